# rstatsd %post: Fedora/RHEL convention: apply the distribution's preset policy on first
# install (services are normally not enabled, never started); restart on upgrade is %postun's.
sysctl -q -p /usr/lib/sysctl.d/60-rstatsd.conf >/dev/null 2>&1 || true
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    if [ "$1" -eq 1 ]; then
        systemctl preset rstatsd.service >/dev/null 2>&1 || true
    fi
fi
exit 0
