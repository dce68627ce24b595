"""The АС «СЭП» emulator (``emulator.py``), its in-memory SEP (``world.py``) and its SOAP (``soap.py``)."""
