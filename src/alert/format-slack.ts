/**
 * A Slack incoming-webhook message (api.slack.com/messaging/webhooks): `text` is the notification and
 * screen-reader fallback, `blocks` the Block Kit layout a channel shows. Limits respected here, from
 * api.slack.com/reference/block-kit/blocks: header text 150 chars, section text 3000, at most 10
 * fields of 2000 each, button text 75, button URL 3000.
 */
import type { Finding, FindingEvent, Severity } from '../detect/finding.js';
import { actorOf, consoleExtractUrl, consoleFindingUrl, trafficOf, type RenderContext } from './links.js';

const SEVERITY_EMOJI: Record<Severity, string> = {
  critical: ':rotating_light:',
  high: ':red_circle:',
  medium: ':large_orange_circle:',
  low: ':large_yellow_circle:',
  info: ':information_source:',
};

/** Slack mrkdwn needs only these three escaped (api.slack.com/reference/surfaces/formatting#escaping). */
export function slackEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function cut(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

function code(s: string | number | undefined): string {
  return s === undefined || s === '' ? '_unknown_' : `\`${slackEscape(String(s)).replace(/`/g, "'")}\``;
}

export interface SlackMessage {
  text: string;
  blocks: Record<string, unknown>[];
}

function headline(e: FindingEvent): string {
  const f = e.finding;
  const sev = f.severity.toUpperCase();
  switch (e.type) {
    case 'finding.created':
      return `${SEVERITY_EMOJI[f.severity]} ${sev}: ${f.kind}`;
    case 'finding.updated':
      return `${SEVERITY_EMOJI[f.severity]} ${sev}: ${f.kind} (seen ${f.count} times)`;
    case 'finding.resolved':
      return `:white_check_mark: Resolved: ${f.kind}`;
  }
}

export function renderSlackMessage(e: FindingEvent, ctx: RenderContext): SlackMessage {
  const f: Finding = e.finding;
  const { vni, sourceIp } = trafficOf(f);
  const actor = actorOf(f);
  // Buttons open the console (a person with a browser), not the API (which needs a bearer header).
  const open = consoleFindingUrl(f, ctx);
  const extract = consoleExtractUrl(f, ctx);
  const head = headline(e);

  // A flood is about many sources, none of them a session: name the top ones instead.
  const top = f.kind === 'session-flood' ? topSourcesOf(f) : undefined;
  const fields = [
    `*Severity*\n${f.severity}`,
    `*Kind*\n${f.kind}`,
    ...(top !== undefined
      ? [`*Top sources*\n${top.map((t) => `${code(t.sourceIp)} ${t.newPairs}`).join('\n') || code(undefined)}`]
      : [`*Session*\n${code(f.sessionId)}`, `*Source IP*\n${code(sourceIp)}`, `*VNI*\n${code(vni)}`]),
    `*Actor*\n${code(actor)}`,
    `*Seen*\n${f.count} time${f.count === 1 ? '' : 's'}`,
    `*First seen*\n${slackEscape(f.firstSeen)}`,
    `*Last seen*\n${slackEscape(f.lastSeen)}`,
  ].map((t) => ({ type: 'mrkdwn', text: cut(t, 2000) }));

  const blocks: Record<string, unknown>[] = [
    { type: 'header', text: { type: 'plain_text', text: cut(head, 150), emoji: true } },
    { type: 'section', text: { type: 'mrkdwn', text: cut(slackEscape(f.summary), 3000) } },
    { type: 'section', fields },
  ];
  const buttons: Record<string, unknown>[] = [];
  if (open !== undefined && open.length <= 3000) buttons.push({ type: 'button', text: { type: 'plain_text', text: 'Open in console', emoji: false }, url: open, action_id: 'mirrorguard_console' });
  if (extract !== undefined && extract.length <= 3000) buttons.push({ type: 'button', text: { type: 'plain_text', text: 'Extract PCAP', emoji: false }, url: extract, action_id: 'mirrorguard_pcap' });
  if (buttons.length > 0) blocks.push({ type: 'actions', elements: buttons });
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: cut(`mirrorguard · ${e.type} · finding ${code(f.id)} · ${new Date(e.at).toISOString()}`, 3000) }] });

  // The notification text: one line a phone lock screen can show, naming the who and where.
  const where = top?.[0] !== undefined ? `top source ${top[0].sourceIp}` : f.sessionId ?? (sourceIp !== undefined ? `${sourceIp}${vni !== undefined ? ` VNI ${vni}` : ''}` : undefined);
  const text = cut(slackEscape(`${head}${where !== undefined ? ` on ${where}` : ''}: ${f.summary}${actor !== undefined ? ` (actor ${actor})` : ''}`), 3000);
  return { text, blocks };
}

/** The first three of a session-flood finding's `evidence.topSources` that look right (it is JSON from SQLite). */
function topSourcesOf(f: Finding): { sourceIp: string; newPairs: number }[] {
  const list = f.evidence.topSources;
  if (!Array.isArray(list)) return [];
  const out: { sourceIp: string; newPairs: number }[] = [];
  for (const t of list.slice(0, 3) as unknown[]) {
    const r = t as { sourceIp?: unknown; newPairs?: unknown };
    if (typeof r?.sourceIp === 'string' && typeof r.newPairs === 'number') out.push({ sourceIp: r.sourceIp, newPairs: r.newPairs });
  }
  return out;
}

export function renderSlack(e: FindingEvent, ctx: RenderContext): string {
  return JSON.stringify(renderSlackMessage(e, ctx));
}

export function renderSlackTest(at: number, host: string, version: string): string {
  const text = `:white_check_mark: mirrorguard ${slackEscape(version)} on ${slackEscape(host)}: webhook test. Alerts for rogue mirror sessions will arrive here.`;
  const msg: SlackMessage = {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `mirrorguard · webhook.test · ${new Date(at).toISOString()}` }] },
    ],
  };
  return JSON.stringify(msg);
}
