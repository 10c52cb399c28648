"""gunicorn settings for the web process (``gunicorn -c config/gunicorn.py config.wsgi``).

Access log lines keep what operations need (client, time, method, path, status, size, duration,
request id) and never the query string, the Referer or the user agent: a hand-typed search or a
link from another page can carry a phone number, a name or an email there."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
forwarded_allow_ips = "*"
accesslog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms id=%({x-request-id}o)s'
