"""The 1C side: the master-data export format ``obmen import`` reads."""
