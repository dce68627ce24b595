"""Electronic signatures obmen receives from others: checks that need no licensed cryptographic provider."""
