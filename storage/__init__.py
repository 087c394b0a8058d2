"""What a run leaves on disk, written so that nothing the user has is ever half-written: files and
checkpoints written atomically, the output folder's claim and the loss curve (files.py), the training
state --resume continues from (resume.py), and the provenance every result records (provenance.py)."""
