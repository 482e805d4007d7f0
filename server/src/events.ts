/**
 * The push channel: server-sent events announcing new checkpoints per vault.
 * Subscribers learn only that a device's log grew (device and size); they fetch
 * and verify the entries themselves. A stream belongs to the device that opened
 * it and ends when that device may no longer read the vault (it was removed).
 */
import type { Response } from 'express';

export interface CheckpointEvent {
  device: string;
  size: number;
}

export class EventHub {
  // Per vault: each open stream and the device (lowercase hex) that opened it.
  private readonly streams = new Map<string, Map<Response, string>>();

  subscribe(vaultId: string, res: Response, onClose: () => void, device: string): void {
    let set = this.streams.get(vaultId);
    if (set === undefined) this.streams.set(vaultId, (set = new Map()));
    set.set(res, device);
    res.on('close', () => {
      set.delete(res);
      if (set.size === 0 && this.streams.get(vaultId) === set) this.streams.delete(vaultId);
      onClose();
    });
  }

  /**
   * Sends the event to every stream of the vault whose device `mayRead`, and
   * ends the others first: a device removed by the append that raised the
   * event learns nothing more, not even that logs grew.
   */
  publish(vaultId: string, event: CheckpointEvent, mayRead: (device: string) => boolean = () => true): void {
    const streams = this.streams.get(vaultId);
    // Most appends have no one listening: no event text is built for them.
    if (streams === undefined) return;
    const data = `event: checkpoint\ndata: ${JSON.stringify(event)}\n\n`;
    for (const [res, device] of streams) {
      if (mayRead(device)) res.write(data);
      else res.end();
    }
  }

  /** Ends every stream (graceful shutdown). */
  closeAll(): void {
    for (const set of this.streams.values()) for (const res of set.keys()) res.end();
    this.streams.clear();
  }

  get size(): number {
    let n = 0;
    for (const set of this.streams.values()) n += set.size;
    return n;
  }
}
