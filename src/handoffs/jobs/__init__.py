"""Background jobs run by the arq worker fleet (see worker.py)."""
