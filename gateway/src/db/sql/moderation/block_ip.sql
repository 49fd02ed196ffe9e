-- The address arrives as text (an address or a network) and is read as inet here.
SELECT nostr.block_ip($1::text::inet, $2::text)
