"""The hall manager: the hall office's service. Reports on the ledger (``reports``), read without ever writing it."""
