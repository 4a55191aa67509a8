import { MemoryArchiveJobs } from '../../src/archive/memory-jobs.js';
import { jobsContract } from './jobs-contract.js';

jobsContract('memory', () => new MemoryArchiveJobs());
