import type { Finality } from '../../machines/tracker.machine.js';
import { InvalidInputError } from '../errors.js';
import { ChainDue } from './due-heads.js';
import { parseConfirmations } from './validate.js';

/** A chain trackers can be on. */
export interface ChainInfo {
  /** EIP-155 chain id. */
  id: number;
  /** How people and the API name it (lower-case; not all digits). */
  name: string;
  /** What a tracker started on it without `confirmations` waits for (default: the system's count). */
  confirmations?: number | Finality | undefined;
}

/** anvil's (and hardhat's) chain id: the chain of a system given no chains. */
export const DEV_CHAIN_ID = 31337;

/** One chain as the runtime keeps it: its settings and its due trackers (see `ChainDue`). */
export interface RuntimeChain {
  id: number;
  name: string;
  isDefault: boolean;
  requiredConfirmations: number;
  finality: Finality | null;
  due: ChainDue;
}

/**
 * The chains of a tracker system, by id and by name; one of them is the default (trackers started
 * without a chain, and rows stored before trackers had one, are its).
 *
 * @example
 * const chains = new ChainDirectory([{ id: 1, name: 'mainnet' }, { id: 8453, name: 'base' }], 1, 12);
 * chains.resolve('base').id; // 8453
 */
export class ChainDirectory {
  readonly default: RuntimeChain;
  private readonly byId = new Map<number, RuntimeChain>();
  private readonly byName = new Map<string, RuntimeChain>();
  private readonly list: readonly RuntimeChain[];

  constructor(infos: readonly ChainInfo[], defaultId: number | undefined, defaultConfirmations: number) {
    const list = infos.length > 0 ? infos : [{ id: DEV_CHAIN_ID, name: 'default' }];
    const chosen = defaultId ?? list[0]!.id;
    for (const info of list) {
      if (!Number.isSafeInteger(info.id) || info.id <= 0)
        throw new TypeError(`chain id ${info.id} is not a positive integer`);
      const name = info.name.toLowerCase();
      if (!/^[a-z0-9_-]+$/.test(name) || /^\d+$/.test(name))
        throw new TypeError(`chain name ${JSON.stringify(info.name)} is not a name`);
      if (this.byId.has(info.id)) throw new TypeError(`chain id ${info.id} is given twice`);
      if (this.byName.has(name)) throw new TypeError(`chain name ${name} is given twice`);
      const { requiredConfirmations, finality } = parseConfirmations(info.confirmations ?? defaultConfirmations);
      const chain: RuntimeChain = {
        id: info.id,
        name,
        isDefault: info.id === chosen,
        requiredConfirmations,
        finality,
        due: new ChainDue(),
      };
      this.byId.set(chain.id, chain);
      this.byName.set(name, chain);
    }
    const found = this.byId.get(chosen);
    if (!found) throw new TypeError(`the default chain ${chosen} is not one of the chains`);
    this.default = found;
    this.list = [...this.byId.values()];
  }

  get(id: number): RuntimeChain | undefined {
    return this.byId.get(id);
  }

  /** A chain by id (a number, or a string of digits) or name, as a client gives it (undefined: the default); else `unknown_chain`. */
  resolve(chain: unknown): RuntimeChain {
    if (chain === undefined) return this.default;
    // A name is never all digits: a string of digits is an id (as a query string gives it).
    const id =
      typeof chain === 'number'
        ? chain
        : typeof chain === 'string' && /^\d{1,16}$/.test(chain)
          ? Number(chain)
          : undefined;
    const found =
      id !== undefined
        ? this.byId.get(id)
        : typeof chain === 'string'
          ? this.byName.get(chain.toLowerCase())
          : undefined;
    if (found) return found;
    throw new InvalidInputError(
      'unknown_chain',
      `chain must be the id or name of a configured chain (${this.all()
        .map((c) => `${c.name} = ${c.id}`)
        .join(', ')})`,
    );
  }

  all(): readonly RuntimeChain[] {
    return this.list;
  }
}
