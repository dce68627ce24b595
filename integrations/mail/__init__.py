"""Mail: reading a mailbox (IMAP, or a Maildir for the embedded demo), parsing real-world letters,
recognising SEP notifications and sending letters by SMTP. No Celery and no database here."""
