"""What every part needs to talk to a chain: deployment records, node answers, EIP-2612
permits and the ape-script helpers."""
