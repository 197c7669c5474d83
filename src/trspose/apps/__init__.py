"""The applications built on a trained model: evaluation and prediction jobs (``jobs``), video (``video``), export
(``export``), diagnostics (``diagnostics``), the training preview (``training_preview``) and the drawing they share
(``drawing``). ``predictor.load_model`` turns a checkpoint or an exported model into a ready network. Nothing in
``trspose.engine`` (training) imports from here."""
