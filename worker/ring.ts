/**
 * The recent output of a terminal or process: chunks kept until their total
 * length passes `capacity` characters, oldest dropped first. Attaching
 * clients get this, then live output.
 */
export class Ring<Tag = undefined> {
  private chunks: Array<{ tag: Tag; data: string }> = [];
  private size = 0;
  /** Whether anything has been dropped. */
  truncated = false;

  constructor(private readonly capacity: number) {}

  push(data: string, tag: Tag): void {
    if (data.length === 0) return;
    const lastChunk = this.chunks[this.chunks.length - 1];
    // Merge small consecutive chunks of one stream so a chatty program does not make a long array.
    if (lastChunk && lastChunk.tag === tag && lastChunk.data.length < 4096) lastChunk.data += data;
    else this.chunks.push({ tag, data });
    this.size += data.length;
    while (this.size > this.capacity && this.chunks.length > 0) {
      this.truncated = true;
      const first = this.chunks[0]!;
      const excess = this.size - this.capacity;
      if (first.data.length <= excess) {
        this.chunks.shift();
        this.size -= first.data.length;
      } else {
        first.data = first.data.slice(excess);
        this.size -= excess;
      }
    }
  }

  entries(): Array<{ tag: Tag; data: string }> {
    return this.chunks.map((c) => ({ ...c }));
  }

  text(): string {
    return this.chunks.map((c) => c.data).join('');
  }
}
