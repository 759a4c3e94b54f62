"""Publishing pipeline for the Pain Free Living newsletter.

The flow, stage by stage::

    issues/*.md --parse--> Issue --render--> RenderedIssue --site--> public/
                                                          \\--send--> Transport

Each stage is a small function over plain data; only the transports, the
subscriber store and the site writer touch the outside world.
"""

__version__ = "0.1.0"
