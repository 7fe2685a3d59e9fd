"""Lead scoring: marketers' rules (``content/scoring.yml``) and the pure functions that turn a
lead's details and posts into fit, engagement and a score, each with the reasons behind it.

``rules`` reads and checks the file; ``score`` computes (no database, no Flask); ``domains``
knows free-mail and disposable domains from maintained list packages; ``apply`` writes scores
(on a post, in ``leadgate rescore`` and the daily refresh of decay).
"""
