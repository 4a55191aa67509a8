/**
 * A local HTTP server that answers DescribeTrafficMirrorSessions the way EC2 does: the EC2 query
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

export type Answer = { pages: FakeSession[][] } | { error: { status: number; code: string; message: string } };

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
      if (req.method !== 'POST' || form.get('Action') !== 'DescribeTrafficMirrorSessions' || form.get('Version') !== '2016-11-15') {
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
