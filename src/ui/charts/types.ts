import type { CurvePoint } from '../../app/protocol';

export type { CurvePoint };

export interface Bar {
  key: string;
  label: string;
  value: number;
  color: string;
}

export interface Curve {
  key: string;
  label: string;
  points: CurvePoint[];
  color: string;
  dash?: string;
}
