"""The 1C side: the master-data export ``obmen import`` reads (``master_data``), and the invoice
HTTP service: its client, wire format, session leases and the payment purposes that name invoices."""
