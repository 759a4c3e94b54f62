"""Subscribers: the store, consent, double opt-in, unsubscribe and bounces.

This package is the lower layer: it never imports ``pipeline``. Where it has
to send mail (confirmations, welcomes) it is handed a callable by whoever
wires it together.
"""
