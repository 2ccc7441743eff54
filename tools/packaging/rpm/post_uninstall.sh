# rstatsd %postun: reload units; on upgrade restart a running service. The user stays (RPM
# convention); a modified config is kept as rstatsd.toml.rpmsave.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    if [ "$1" -ge 1 ]; then
        systemctl try-restart rstatsd.service || true
    fi
fi
exit 0
