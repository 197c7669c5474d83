"""Make a short test video from one still image: a camera panning and zooming across it, so the people in it move
through the frame. Used for the video example of docs/VIDEO.md (any real clip works the same way).

    python scripts/make_pan_video.py IMAGE OUT.mp4 [--frames 48] [--fps 12]
"""

import argparse

import cv2
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("image")
    parser.add_argument("out")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--fps", type=float, default=12.0)
    args = parser.parse_args()
    image = cv2.imread(args.image)
    if image is None:
        raise SystemExit(f"error: cannot read {args.image}; give a JPEG or PNG file")
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (width, height))
    for t in np.linspace(0.0, 1.0, args.frames):
        zoom = 1.0 + 0.5 * np.sin(np.pi * t)  # in and out again
        crop_w, crop_h = width / zoom, height / zoom
        x0 = (width - crop_w) * t  # pan left to right
        y0 = (height - crop_h) * 0.5
        source = np.float32([[x0, y0], [x0 + crop_w, y0], [x0, y0 + crop_h]])
        target = np.float32([[0, 0], [width, 0], [0, height]])
        frame = cv2.warpAffine(
            image, cv2.getAffineTransform(source, target), (width, height), flags=cv2.INTER_LINEAR
        )
        writer.write(frame)
    writer.release()
    print(f"wrote {args.out}: {args.frames} frames of {width}x{height}")


if __name__ == "__main__":
    main()
