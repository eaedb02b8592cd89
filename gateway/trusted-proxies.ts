import { BlockList, isIP } from 'node:net';

/** Whether a direct peer address is one of the configured reverse proxies. */
export type ProxyTrust = (address: string | undefined) => boolean;

/** The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`), else the address itself. */
function unmap(address: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m ? m[1]! : address;
}

/**
 * Compile `server.trustProxy` (validated by config/schema.ts: addresses and
 * CIDR blocks, IPv4 and IPv6) into a predicate. `false` trusts nobody. A
 * dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`: those match the
 * IPv4 entries, as proxy-addr (fastify) does.
 */
export function proxyTrust(list: false | readonly string[] | undefined): ProxyTrust {
  if (!list || list.length === 0) return () => false;
  const blocks = new BlockList();
  for (const entry of list) {
    const [addr = '', prefix] = entry.trim().split('/');
    const family = isIP(unmap(addr)) === 6 ? 'ipv6' : 'ipv4';
    const a = unmap(addr);
    if (prefix === undefined) blocks.addAddress(a, family);
    else blocks.addSubnet(a, Number(prefix), family);
  }
  return (address) => {
    if (!address) return false;
    const a = unmap(address);
    const family = isIP(a);
    if (family === 0) return false;
    return blocks.check(a, family === 6 ? 'ipv6' : 'ipv4');
  };
}
