/** The detector's counters, by the names docs/counters.md lists ("Detector"). */
export interface DetectCounters {
  'detect.pairs.evaluated': number;
  'detect.pairs.unauthorized': number;
  'detect.pairs.forgotten': number;
  'detect.pairs.coalesced': number;
  'detect.flood.episodes': number;
  'detect.store.errors': number;
  'detect.control.events': number;
  'detect.control.duplicates': number;
  'detect.inventory.runs': number;
  'detect.inventory.failures': number;
}

export function newDetectCounters(): DetectCounters {
  return {
    'detect.pairs.evaluated': 0,
    'detect.pairs.unauthorized': 0,
    'detect.pairs.forgotten': 0,
    'detect.pairs.coalesced': 0,
    'detect.flood.episodes': 0,
    'detect.store.errors': 0,
    'detect.control.events': 0,
    'detect.control.duplicates': 0,
    'detect.inventory.runs': 0,
    'detect.inventory.failures': 0,
  };
}
