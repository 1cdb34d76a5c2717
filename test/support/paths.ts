import type { EventObject, Snapshot } from 'xstate';
import type { AdjacencyValue, Step, TestModel } from 'xstate/graph';

export interface ModelPath<TSnapshot, TEvent> {
  description: string;
  steps: Array<Step<TSnapshot & Snapshot<unknown>, TEvent & EventObject>>;
}

/**
 * One path per edge of the model's state graph: the shortest path to a state, then one of its
 * transitions. Shortest paths alone reach every state but skip an edge whose target is reached
 * more cheaply another way; these walk every transition.
 */
export function edgeCoveringPaths<TSnapshot extends Snapshot<unknown>, TEvent extends EventObject, TInput>(
  model: TestModel<TSnapshot, TEvent, TInput>,
  serialize: (state: TSnapshot, event: TEvent | undefined, prev: TSnapshot | undefined) => string,
  describeEvent: (event: TEvent) => string = (e) => e.type,
): Array<ModelPath<TSnapshot, TEvent>> {
  const shortest = new Map<string, Array<Step<TSnapshot, TEvent>>>();
  for (const path of model.getShortestPaths({ allowDuplicatePaths: true })) {
    const steps = path.steps;
    const last = steps[steps.length - 1]!;
    const key = serialize(last.state, steps.length > 1 ? last.event : undefined, steps[steps.length - 2]?.state);
    const known = shortest.get(key);
    if (!known || known.length > steps.length) shortest.set(key, steps);
  }
  const paths: Array<ModelPath<TSnapshot, TEvent>> = [];
  const adjacency = Object.entries(model.getAdjacencyMap()) as Array<[string, AdjacencyValue<TSnapshot, TEvent>]>;
  for (const [key, { transitions }] of adjacency) {
    const prefix = shortest.get(key);
    if (!prefix) throw new Error(`no path reaches ${key}`);
    for (const { event, state } of Object.values(transitions)) {
      const steps = [...prefix, { event, state }];
      paths.push({
        description: steps
          .slice(1)
          .map((s) => describeEvent(s.event))
          .join(' → '),
        steps,
      });
    }
  }
  return paths;
}
