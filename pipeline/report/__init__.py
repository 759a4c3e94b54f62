"""`publish report`: how the list and its issues are doing, as one
self-contained HTML page (or JSON), and the headline figures of
`publish status ISSUE`.

    subscribers.reporting ── rows ──▶ data.py     weeks, rates, limits (pure)
                                        └─▶ page.py + charts.py   HTML and
                                            inline SVG (pure), report.html.j2
    build.py   reads the database, writes the page atomically
"""
