/**
 * A local HTTP server that answers DescribeTrafficMirrorSessions (and, for `manifest init`'s details,
 * DescribeNetworkInterfaces and DescribeTrafficMirrorTargets with their ID filters) the way EC2 does: the EC2 query
 * protocol (POST, form-encoded `Action=...&Version=2016-11-15`, XML answer in the 2016-11-15
 * namespace, `nextToken` for pagination, `<Response><Errors>` for errors). The real SDK talks to it
 * through its `endpoint` option, so signing, pagination and XML parsing are exercised, not mocked.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, vi } from 'vitest';

export interface FakeSession {
  trafficMirrorSessionId: string;
  trafficMirrorTargetId: string;
  trafficMirrorFilterId: string;
  networkInterfaceId: string;
  ownerId: string;
  virtualNetworkId: number;
  sessionNumber: number;
  packetLength?: number;
  description?: string;
  tags?: Record<string, string>;
}

export interface FakeEc2 {
  url: string;
  /** Every request: its form fields and Authorization header. */
  requests: { form: URLSearchParams; authorization: string | undefined }[];
  close(): Promise<void>;
}

export interface FakeDetails {
  /** Network interfaces: ID and primary private IPv4. */
  enis?: { id: string; ip: string }[];
  /** Mirror targets: ID, type, and the GWLB endpoint of gateway-load-balancer-endpoint targets. */
  targets?: { id: string; type: 'network-interface' | 'network-load-balancer' | 'gateway-load-balancer-endpoint'; gwlbe?: string }[];
  /** Answer the two detail calls with this error (a role without those permissions). */
  detailError?: { status: number; code: string; message: string };
}

export type Answer = ({ pages: FakeSession[][] } & FakeDetails) | { error: { status: number; code: string; message: string } };

/** The values of the request's filter named `name` (Filter.N.Name / Filter.N.Value.M). */
function filterValues(form: URLSearchParams, name: string): Set<string> | null {
  for (let n = 1; form.has(`Filter.${n}.Name`); n++) {
    if (form.get(`Filter.${n}.Name`) !== name) continue;
    const out = new Set<string>();
    for (let m = 1; form.has(`Filter.${n}.Value.${m}`); m++) out.add(form.get(`Filter.${n}.Value.${m}`)!);
    return out;
  }
  return null;
}

const NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function itemXml(s: FakeSession): string {
  const tags = Object.entries(s.tags ?? {})
    .map(([k, v]) => `<item><key>${esc(k)}</key><value>${esc(v)}</value></item>`)
    .join('');
  return (
    '<item>' +
    `<trafficMirrorSessionId>${s.trafficMirrorSessionId}</trafficMirrorSessionId>` +
    `<trafficMirrorTargetId>${s.trafficMirrorTargetId}</trafficMirrorTargetId>` +
    `<trafficMirrorFilterId>${s.trafficMirrorFilterId}</trafficMirrorFilterId>` +
    `<networkInterfaceId>${s.networkInterfaceId}</networkInterfaceId>` +
    `<ownerId>${s.ownerId}</ownerId>` +
    (s.packetLength !== undefined ? `<packetLength>${s.packetLength}</packetLength>` : '') +
    `<sessionNumber>${s.sessionNumber}</sessionNumber>` +
    `<virtualNetworkId>${s.virtualNetworkId}</virtualNetworkId>` +
    (s.description !== undefined ? `<description>${esc(s.description)}</description>` : '') +
    `<tagSet>${tags}</tagSet>` +
    '</item>'
  );
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startFakeEc2(answer: Answer): Promise<FakeEc2> {
  const requests: FakeEc2['requests'] = [];
  const server: Server = createServer((req, res) => {
    void body(req).then((text) => {
      const form = new URLSearchParams(text);
      requests.push({ form, authorization: req.headers.authorization });
      const requestId = `req-${requests.length}`;
      const action = form.get('Action');
      const errorXml = (e: { status: number; code: string; message: string }) => {
        res.writeHead(e.status, { 'content-type': 'text/xml;charset=UTF-8' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${e.code}</Code><Message>${esc(e.message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`);
      };
      if (req.method === 'POST' && form.get('Version') === '2016-11-15' && 'pages' in answer && (action === 'DescribeNetworkInterfaces' || action === 'DescribeTrafficMirrorTargets')) {
        if (answer.detailError) return errorXml(answer.detailError);
        res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
        if (action === 'DescribeNetworkInterfaces') {
          const want = filterValues(form, 'network-interface-id');
          const items = (answer.enis ?? []).filter((e) => want === null || want.has(e.id));
          res.end(
            `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeNetworkInterfacesResponse xmlns="${NS}"><requestId>${requestId}</requestId><networkInterfaceSet>` +
              items.map((e) => `<item><networkInterfaceId>${e.id}</networkInterfaceId><privateIpAddress>${e.ip}</privateIpAddress><privateIpAddressesSet><item><privateIpAddress>${e.ip}</privateIpAddress><primary>true</primary></item></privateIpAddressesSet></item>`).join('') +
              `</networkInterfaceSet></DescribeNetworkInterfacesResponse>`,
          );
        } else {
          const want = filterValues(form, 'traffic-mirror-target-id');
          const items = (answer.targets ?? []).filter((t) => want === null || want.has(t.id));
          res.end(
            `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeTrafficMirrorTargetsResponse xmlns="${NS}"><requestId>${requestId}</requestId><trafficMirrorTargetSet>` +
              items.map((t) => `<item><trafficMirrorTargetId>${t.id}</trafficMirrorTargetId><type>${t.type}</type>${t.gwlbe ? `<gatewayLoadBalancerEndpointId>${t.gwlbe}</gatewayLoadBalancerEndpointId>` : ''}</item>`).join('') +
              `</trafficMirrorTargetSet></DescribeTrafficMirrorTargetsResponse>`,
          );
        }
        return;
      }
      if (req.method !== 'POST' || action !== 'DescribeTrafficMirrorSessions' || form.get('Version') !== '2016-11-15') {
        res.writeHead(400, { 'content-type': 'text/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InvalidAction</Code><Message>unexpected ${esc(text)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`);
        return;
      }
      if ('error' in answer) {
        res.writeHead(answer.error.status, { 'content-type': 'text/xml;charset=UTF-8' });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${answer.error.code}</Code><Message>${esc(answer.error.message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`,
        );
        return;
      }
      const token = form.get('NextToken');
      const index = token === null ? 0 : Number(token.replace('page-', ''));
      const page = answer.pages[index] ?? [];
      const next = index + 1 < answer.pages.length ? `<nextToken>page-${index + 1}</nextToken>` : '';
      res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeTrafficMirrorSessionsResponse xmlns="${NS}"><requestId>${requestId}</requestId>` +
          `<trafficMirrorSessionSet>${page.map(itemXml).join('')}</trafficMirrorSessionSet>${next}</DescribeTrafficMirrorSessionsResponse>`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * For a describe block: static credentials in the environment (the SDK's default chain reads them first,
 * and IMDS is never probed), and every fake server started through `start` closed after each test.
 */
export function useFakeEc2(): { start(answer: Answer): Promise<FakeEc2> } {
  const started: FakeEc2[] = [];
  beforeEach(() => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIDEXAMPLETEST');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'secret-for-tests');
    vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true');
  });
  afterEach(async () => {
    vi.unstubAllEnvs();
    await Promise.allSettled(started.splice(0).map((e) => e.close()));
  });
  return {
    async start(answer) {
      const e = await startFakeEc2(answer);
      started.push(e);
      return e;
    },
  };
}
