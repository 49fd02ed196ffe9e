SELECT nostr.unblock_ip($1::text::inet)
