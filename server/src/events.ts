/**
 * The push channel: server-sent events announcing new checkpoints per vault.
 * Subscribers learn only that a device's log grew (device and size); they fetch
 * and verify the entries themselves.
 */
import type { Response } from 'express';

export interface CheckpointEvent {
  device: string;
  size: number;
}

export class EventHub {
  private readonly streams = new Map<string, Set<Response>>();

  subscribe(vaultId: string, res: Response, onClose: () => void): void {
    let set = this.streams.get(vaultId);
    if (set === undefined) this.streams.set(vaultId, (set = new Set()));
    set.add(res);
    res.on('close', () => {
      set.delete(res);
      if (set.size === 0) this.streams.delete(vaultId);
      onClose();
    });
  }

  publish(vaultId: string, event: CheckpointEvent): void {
    const data = `event: checkpoint\ndata: ${JSON.stringify(event)}\n\n`;
    for (const res of this.streams.get(vaultId) ?? []) res.write(data);
  }

  /** Ends every stream (graceful shutdown). */
  closeAll(): void {
    for (const set of this.streams.values()) for (const res of set) res.end();
    this.streams.clear();
  }

  get size(): number {
    let n = 0;
    for (const set of this.streams.values()) n += set.size;
    return n;
  }
}
