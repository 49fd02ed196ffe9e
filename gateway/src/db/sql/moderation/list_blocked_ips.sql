SELECT ip, reason FROM nostr.list_blocked_ips()
