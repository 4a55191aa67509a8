/** Every outside need a test may declare, what it is and how to get it (no vitest runtime here: the reporter imports it). */
export const NEEDS = {
  tshark: { probe: 'tshark', get: 'apt-get install tshark' },
  mergecap: { probe: 'mergecap', get: 'apt-get install tshark' },
  editcap: { probe: 'editcap', get: 'apt-get install tshark' },
  tcpdump: { probe: 'tcpdump', get: 'apt-get install tcpdump' },
  scapy: { probe: 'python3-scapy', get: 'apt-get install python3-scapy' },
  python3: { probe: 'python3', get: 'apt-get install python3' },
  libpcap: { probe: 'the cap package built against libpcap, and root', get: 'apt-get install libpcap-dev && npm ci (as root)' },
  native: { probe: 'the native recvmmsg addon', get: 'apt-get install g++ make && npm ci' },
  'native-merge': { probe: 'the native merge step (native/build/Release/mirrorguard_merge.node)', get: 'apt-get install g++ make && npm ci' },
  gcc: { probe: 'gcc (to build test/bench/vxlan_steady.c)', get: 'apt-get install gcc' },
  root: { probe: 'root (tmpfs mounts, raw sockets)', get: 'run the tests as root' },
  procfs: { probe: 'Linux /proc (/proc/self/fdinfo)', get: 'run the tests on Linux with /proc mounted' },
  tmpfs: { probe: 'mounting a tmpfs (root with CAP_SYS_ADMIN)', get: 'run the tests as root, outside a container that forbids mount' },
  openssl: { probe: 'openssl', get: 'apt-get install openssl' },
  fincore: { probe: 'fincore (util-linux), to see which pages of a file are in the page cache', get: 'apt-get install util-linux-extra' },
  script: { probe: 'script (util-linux), to run the CLI under a pseudo-terminal', get: 'apt-get install util-linux' },
  'systemd-analyze': { probe: 'systemd-analyze', get: 'apt-get install systemd' },
  'systemd-sysusers': { probe: 'systemd-sysusers', get: 'apt-get install systemd' },
  bash: { probe: 'bash', get: 'apt-get install bash' },
  curl: { probe: 'curl (documentation examples)', get: 'apt-get install curl' },
  jq: { probe: 'jq (documentation examples)', get: 'apt-get install jq' },
  postgres: { probe: 'PostgreSQL server binaries or MIRRORGUARD_TEST_PG_URL', get: 'apt-get install postgresql' },
  s3: { probe: 'moto_server (S3 emulator) that starts', get: 'pip install "moto[server]", or on a Debian release that has it: apt-get install python3-moto python3-flask python3-flask-cors' },
  chromium: { probe: 'Chromium and playwright-core', get: 'apt-get install chromium' },
} as const;

export type Need = keyof typeof NEEDS;

/** The marker a skipped test's name carries; the summary reporter looks for it. */
export const NEEDS_MARKER = '[needs ';

