"""The bank's side of obmen: request signatures, the payment payload, the OSMP check/pay protocol."""
