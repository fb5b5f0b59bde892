"""Text and source code as a second discrete modality for the generic flows (see README.md here).

Submodules are imported on use (no import-time side effects): tokenizer, dataset, datamodule,
model, module, sampling, metrics, evaluate, checkpoint, cli.
"""
