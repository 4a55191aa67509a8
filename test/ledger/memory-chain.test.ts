import { MemoryLedgerChain } from '../../src/ledger/chain.js';
import { ledgerChainContract } from './chain-contract.js';

// One in-memory chain shared by every handle, as one database is shared by every node.
ledgerChainContract('memory', (n) => {
  const chain = new MemoryLedgerChain();
  return Array.from({ length: n }, () => chain);
});
