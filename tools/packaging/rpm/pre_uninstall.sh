# rstatsd %preun: on erase (not upgrade), stop (SIGTERM: final flush) and disable.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now rstatsd.service >/dev/null 2>&1 || true
fi
exit 0
