// One entry point over the partitioning schemes, for callers that choose the
// scheme at run time (the CLI, experiment configs).

import type { Dataset } from '../dataset.js';
import type { Partition } from '../partition.js';
import { type DirichletOptions, dirichletPartition } from './dirichlet.js';
import { type IidOptions, iidPartition } from './iid.js';
import { type PathologicalOptions, pathologicalPartition } from './pathological.js';

export type PartitionRequest =
  | ({ readonly scheme: 'pathological' } & PathologicalOptions)
  | ({ readonly scheme: 'dirichlet' } & DirichletOptions)
  | ({ readonly scheme: 'iid' } & IidOptions);

export function createPartition(dataset: Dataset, request: PartitionRequest): Partition {
  switch (request.scheme) {
    case 'pathological':
      return pathologicalPartition(dataset, request);
    case 'dirichlet':
      return dirichletPartition(dataset, request);
    case 'iid':
      return iidPartition(dataset, request);
  }
}
