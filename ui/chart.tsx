import { useEffect, useState } from 'preact/hooks';
import type { ElkExtendedEdge, ElkNode, ElkPoint } from 'elkjs/lib/elk-api.js';
import type { MachineView, StateNodeView } from './types.js';

interface EdgeEvent {
  event: string;
  guard: string | null;
}
interface PlacedNode {
  path: string;
  key: string;
  x: number;
  y: number;
  width: number;
  height: number;
  compound: boolean;
  tags: string[];
  /** Events taken without leaving the state (actions only). */
  internal: string[];
}
interface PlacedEdge {
  id: string;
  source: string;
  target: string;
  events: EdgeEvent[];
  points: ElkPoint[];
  label: { x: number; y: number; text: string } | null;
  /** From an initial-state marker. */
  initial: boolean;
}
interface Layout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  edges: PlacedEdge[];
  markers: Array<{ x: number; y: number }>;
}

const NODE_FONT = 8.2;
const SMALL_FONT = 6.9;
const NODE_H = 34;
const LINE_H = 15;

const label = (events: EdgeEvent[]): string =>
  events.map((e) => (e.event || 'always') + (e.guard ? ` [${e.guard}]` : '')).join(' · ');

function internalEvents(node: StateNodeView): string[] {
  return [...new Set(node.transitions.filter((t) => t.targets.length === 0).map((t) => t.event || 'always'))];
}

/** The ELK graph of a machine: states as (nested) nodes, transitions grouped by source and target. */
function elkGraph(machine: MachineView, withBadges: boolean): { graph: ElkNode; meta: Map<string, EdgeEvent[]> } {
  const edges: ElkExtendedEdge[] = [];
  const meta = new Map<string, EdgeEvent[]>();
  const toNode = (node: StateNodeView): ElkNode => {
    const internal = internalEvents(node);
    const compound = node.states.length > 0;
    const lines = 1 + (internal.length ? 1 : 0) + (withBadges ? 1 : 0);
    const width = Math.max(
      node.key.length * NODE_FONT + 28,
      internal.join(', ').length * SMALL_FONT + 20,
      withBadges ? 90 : 0,
    );
    const children = node.states.map(toNode);
    if (node.initial) {
      children.unshift({ id: `i:${node.path}`, width: 10, height: 10 });
      edges.push({ id: `init:${node.path}`, sources: [`i:${node.path}`], targets: [`s:${node.initial}`] });
    }
    const byTarget = new Map<string, EdgeEvent[]>();
    for (const t of node.transitions)
      for (const target of t.targets) {
        const list = byTarget.get(target) ?? [];
        list.push({ event: t.event, guard: t.guard });
        byTarget.set(target, list);
      }
    for (const [target, events] of byTarget) {
      const id = `e:${node.path}>${target}`;
      meta.set(id, events);
      const text = label(events);
      edges.push({
        id,
        sources: [`s:${node.path}`],
        targets: [`s:${target}`],
        labels: [{ text, width: text.length * SMALL_FONT + 6, height: 14 }],
      });
    }
    return {
      id: `s:${node.path}`,
      ...(compound
        ? {
            children,
            layoutOptions: {
              'elk.padding': `[top=${16 + lines * LINE_H},left=14,bottom=14,right=14]`,
              'elk.nodeSize.minimum': `(${width}, 40)`,
              'elk.nodeSize.constraints': 'MINIMUM_SIZE',
            },
          }
        : { width, height: NODE_H + (lines - 1) * LINE_H }),
    };
  };
  const rootChildren = machine.root.states.map(toNode);
  if (machine.root.initial) {
    rootChildren.unshift({ id: 'i:', width: 10, height: 10 });
    edges.push({ id: 'init:', sources: ['i:'], targets: [`s:${machine.root.initial}`] });
  }
  // The root's own transitions (none in these machines) have no node to leave from: not drawn.
  return {
    graph: {
      id: 'root',
      layoutOptions: {
        'elk.algorithm': 'layered',
        'elk.direction': 'RIGHT',
        'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
        'elk.edgeRouting': 'ORTHOGONAL',
        'elk.layered.spacing.nodeNodeBetweenLayers': '40',
        'elk.spacing.nodeNode': '28',
        'elk.spacing.edgeLabel': '4',
        'elk.edgeLabels.inline': 'false',
        // States in the order the machine declares them (pending, confirming, confirmed, …).
        'elk.layered.considerModelOrder.strategy': 'NODES_AND_EDGES',
        'elk.layered.cycleBreaking.strategy': 'MODEL_ORDER',
      },
      children: rootChildren,
      edges,
    },
    meta,
  };
}

type Elk = { layout(graph: ElkNode): Promise<ElkNode> };
let elk: Promise<Elk> | undefined;

/**
 * elkjs's bundled build, served as it ships (`/ui/elk.js`, a UMD script that sets `window.ELK`) and
 * loaded only when a chart is first drawn: the table and counts render before it arrives.
 */
function loadElk(): Promise<Elk> {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = '/ui/elk.js';
    script.onload = () => {
      const ELK = (window as unknown as { ELK?: new () => Elk }).ELK;
      if (ELK) resolve(new ELK());
      else reject(new Error('/ui/elk.js did not define ELK'));
    };
    script.onerror = () => reject(new Error('/ui/elk.js did not load'));
    document.head.append(script);
  });
}
const layouts = new Map<string, Promise<Layout>>();

async function computeLayout(machine: MachineView, withBadges: boolean): Promise<Layout> {
  elk ??= loadElk();
  const { graph, meta } = elkGraph(machine, withBadges);
  const laid = await (await elk).layout(graph);
  const nodes: PlacedNode[] = [];
  const markers: Array<{ x: number; y: number }> = [];
  const origin = new Map<string, ElkPoint>([['root', { x: 0, y: 0 }]]);
  const byPath = new Map<string, StateNodeView>();
  const index = (node: StateNodeView): void => {
    byPath.set(node.path, node);
    node.states.forEach(index);
  };
  index(machine.root);
  const walk = (node: ElkNode, dx: number, dy: number): void => {
    for (const child of node.children ?? []) {
      const x = dx + (child.x ?? 0);
      const y = dy + (child.y ?? 0);
      origin.set(child.id, { x, y });
      if (child.id.startsWith('i:')) markers.push({ x: x + 5, y: y + 5 });
      else {
        const view = byPath.get(child.id.slice(2))!;
        nodes.push({
          path: view.path,
          key: view.key,
          x,
          y,
          width: child.width ?? 0,
          height: child.height ?? 0,
          compound: view.states.length > 0,
          tags: view.tags,
          internal: internalEvents(view),
        });
      }
      walk(child, x, y);
    }
  };
  walk(laid, 0, 0);
  const edges: PlacedEdge[] = (laid.edges ?? []).map((edge) => {
    const container = origin.get(edge.container ?? 'root') ?? { x: 0, y: 0 };
    const shift = (p: ElkPoint): ElkPoint => ({ x: p.x + container.x, y: p.y + container.y });
    const section = edge.sections?.[0];
    const points = section ? [section.startPoint, ...(section.bendPoints ?? []), section.endPoint].map(shift) : [];
    const first = edge.labels?.[0];
    return {
      id: edge.id,
      source: edge.sources[0]!.slice(2),
      target: edge.targets[0]!.slice(2),
      events: meta.get(edge.id) ?? [],
      points,
      label:
        first?.text !== undefined
          ? { x: (first.x ?? 0) + container.x, y: (first.y ?? 0) + container.y, text: first.text }
          : null,
      initial: edge.id.startsWith('init:'),
    };
  });
  return { width: laid.width ?? 0, height: laid.height ?? 0, nodes, edges, markers };
}

/** The layout of a machine, computed once per page (the machines do not change while it runs). */
export function layoutOf(machine: MachineView, withBadges: boolean): Promise<Layout> {
  const key = `${machine.id}/${withBadges}`;
  let layout = layouts.get(key);
  if (!layout) {
    layout = computeLayout(machine, withBadges);
    layouts.set(key, layout);
  }
  return layout;
}

/** Whether a change from `from` to `to` by `event` went along this edge (source and target as drawn). */
export function edgeTaken(edge: { source: string; target: string; events: EdgeEvent[] }, step: Step): boolean {
  const within = (path: string | null, node: string) => path !== null && (path === node || path.startsWith(`${node}.`));
  return (
    // An eventless (always) transition is taken on the event that made its guard true.
    edge.events.some((e) => e.event === step.event || e.event === '') &&
    within(step.from, edge.source) &&
    within(step.to, edge.target)
  );
}

export interface Step {
  from: string | null;
  to: string;
  event: string;
}

export interface StatechartProps {
  machine: MachineView;
  /** Path of the current state (`pending.seen`, or `pending` when the sub-state is unknown). */
  current?: string | undefined;
  /** The changes it went through, in order: their states and edges are marked. */
  steps?: Step[];
  /** A short text per state path, drawn in the node (counts). */
  badges?: Record<string, string>;
  title: string;
}

/**
 * A machine's statechart laid out by ELK (layered, nested states inside their parent) and drawn
 * as SVG: the current state highlighted, the states and transitions of its path marked.
 */
export function Statechart({ machine, current, steps = [], badges, title }: StatechartProps) {
  const withBadges = badges !== undefined;
  const [layout, setLayout] = useState<Layout | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    layoutOf(machine, withBadges).then(
      (l) => live && setLayout(l),
      (error: unknown) => live && setFailure(String(error)),
    );
    return () => {
      live = false;
    };
  }, [machine, withBadges]);
  if (failure) return <p role="alert">The chart could not be laid out: {failure}</p>;
  if (!layout) return <p class="muted">Laying out the chart…</p>;
  const visited = new Set<string>();
  for (const step of steps) {
    if (step.from) visited.add(step.from);
    visited.add(step.to);
  }
  const inPath = (path: string) => [...visited].some((v) => v === path || v.startsWith(`${path}.`));
  const isActive = (path: string) => current !== undefined && (current === path || current.startsWith(`${path}.`));
  const marker = `arrow-${machine.id}`;
  const description =
    `${title}. States: ${layout.nodes.map((n) => n.path).join(', ')}.` +
    (current ? ` Current state: ${current}.` : '') +
    (steps.length ? ` Path: ${steps.map((s) => `${s.event || 'always'} to ${s.to}`).join(', ')}.` : '');
  return (
    // Focusable: on a phone the chart keeps a readable size and scrolls sideways.
    <figure class="chart" tabIndex={0}>
      <svg
        viewBox={`0 0 ${Math.ceil(layout.width)} ${Math.ceil(layout.height)}`}
        style={{ maxWidth: `${Math.ceil(layout.width)}px`, minWidth: `${Math.min(Math.ceil(layout.width), 720)}px` }}
        role="img"
        aria-label={description}
        data-machine={machine.id}
      >
        <defs>
          <marker id={marker} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" class="arrowhead" />
          </marker>
        </defs>
        {layout.nodes.map((node) => {
          const classes = ['state'];
          if (node.compound) classes.push('compound');
          if (node.tags.includes('terminal')) classes.push('terminal');
          if (inPath(node.path)) classes.push('visited');
          if (isActive(node.path)) classes.push(current === node.path || !node.compound ? 'current' : 'active');
          const badge = badges?.[node.path];
          let line = 1;
          return (
            <g class={classes.join(' ')} data-state={node.path}>
              <rect x={node.x} y={node.y} width={node.width} height={node.height} rx="8" />
              <text x={node.x + 10} y={node.y + 20} class="state-name">
                {node.key}
                {isActive(node.path) && (current === node.path || !node.compound) ? ' ●' : ''}
              </text>
              {node.internal.length > 0 && (
                <text x={node.x + 10} y={node.y + 20 + LINE_H * line++} class="state-internal">
                  {node.internal.join(', ')}
                </text>
              )}
              {badge !== undefined && (
                <text x={node.x + 10} y={node.y + 20 + LINE_H * line} class="state-badge" data-badge={node.path}>
                  {badge}
                </text>
              )}
            </g>
          );
        })}
        {layout.markers.map((m) => (
          <circle cx={m.x} cy={m.y} r="5" class="initial" />
        ))}
        {layout.edges.map((edge) => {
          const taken = !edge.initial && steps.some((step) => edgeTaken(edge, step));
          const d = edge.points.map((p, i) => `${i ? 'L' : 'M'}${p.x},${p.y}`).join(' ');
          return (
            <g class={`transition${taken ? ' taken' : ''}${edge.initial ? ' initial-edge' : ''}`} data-edge={edge.id}>
              <path d={d} marker-end={`url(#${marker})`} />
              {edge.label && (
                <text x={edge.label.x + 3} y={edge.label.y + 11} class="edge-label">
                  {edge.label.text}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption>{title}</figcaption>
    </figure>
  );
}
