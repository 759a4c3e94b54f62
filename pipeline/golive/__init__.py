"""Going live on Amazon SES: ``publish setup ses`` wires the account, and
``publish doctor`` proves the wiring works.

    names.py      the names setup gives what it makes, from the settings
    findings.py   one line per finding, with its fix
    records.py    the DNS records to add, as a zone-file snippet
    dns.py        SPF, DKIM, DMARC and MX read back from DNS
    setup*.py     observe the account, plan the missing steps, apply them
    doctor*.py    check the account and the settings; the live loop
"""
