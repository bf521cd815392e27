#!/bin/sh
# udhcpc hook for a virtual Pi: configure the address only. No routes, no resolv.conf
# (Debian's default hook would rewrite the host's /etc/resolv.conf).
case "$1" in
deconfig) ip addr flush dev "$interface" ;;
bound | renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	{
		echo "DHCP_IP=$ip"
		echo "DHCP_MASK=${mask:-24}"
		echo "DHCP_SERVERID=${serverid:-}"
		echo "DHCP_SIADDR=${siaddr:-}"
	} >/run/pilab-dhcp.env
	;;
esac
exit 0
