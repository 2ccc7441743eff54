# rstatsd %pre: the system user.
getent group rstatsd >/dev/null || groupadd --system rstatsd
getent passwd rstatsd >/dev/null || useradd --system --gid rstatsd --no-create-home \
    --home-dir /nonexistent --shell /sbin/nologin --comment "rstatsd statsd server" rstatsd
exit 0
