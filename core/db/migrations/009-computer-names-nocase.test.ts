import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS, migrate } from '../migrations.js';
import { PgliteDatabase } from '../pglite.database.js';

describe('migration 9: computer names unique per organization without case', () => {
  let db: PgliteDatabase;
  const orgA = randomUUID();
  const orgB = randomUUID();
  const ids = { oldest: randomUUID(), upper: randomUUID(), lower: randomUUID(), otherOrg: randomUUID(), plain: randomUUID() };
  const long = `L${'x'.repeat(61)}Y`; // 63 characters, the longest name the API allows

  beforeAll(async () => {
    db = await PgliteDatabase.open();
    await migrate(db, MIGRATIONS.filter((m) => m.version < 9));
    for (const [id, name] of [[orgA, 'a'], [orgB, 'b']] as const) {
      await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [id, name, id.slice(0, 6)]);
    }
    const add = (id: string, org: string, name: string, minute: number) =>
      db.query("INSERT INTO computers (id, organization_id, name, address, jit, created_at) VALUES ($1, $2, $3, 'h', '{}', $4)", [
        id, org, name, new Date(Date.UTC(2024, 0, 1, 0, minute)),
      ]);
    // Data the old exact-case rule let in: three spellings of one name in organization a.
    await add(ids.oldest, orgA, 'Web01', 1);
    await add(ids.upper, orgA, 'WEB01', 2);
    await add(ids.lower, orgA, long.toLowerCase(), 3);
    await add(randomUUID(), orgA, long, 2);
    await add(ids.otherOrg, orgB, 'web01', 5);
    await add(ids.plain, orgA, 'db01', 6);
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('keeps the oldest name of a case-only clash and renames the others within 63 characters', async () => {
    const names = new Map((await db.query<{ id: string; name: string }>('SELECT id, name FROM computers')).map((r) => [r.id, r.name]));
    expect(names.get(ids.oldest)).toBe('Web01');
    expect(names.get(ids.upper)).toBe(`WEB01-${ids.upper.slice(0, 8)}`);
    expect(names.get(ids.lower)).toBe(`${long.toLowerCase().slice(0, 54)}-${ids.lower.slice(0, 8)}`);
    expect(names.get(ids.lower)!.length).toBe(63);
    // Another organization, and names without a clash, are untouched.
    expect(names.get(ids.otherOrg)).toBe('web01');
    expect(names.get(ids.plain)).toBe('db01');
  });

  it('refuses a new name that differs only in case within the organization, not across organizations', async () => {
    const insert = (org: string, name: string) =>
      db.query("INSERT INTO computers (id, organization_id, name, address, jit) VALUES ($1, $2, $3, 'h', '{}')", [randomUUID(), org, name]);
    await expect(insert(orgA, 'DB01')).rejects.toMatchObject({ code: '23505' });
    await expect(db.query("UPDATE computers SET name = 'wEb01' WHERE id = $1", [ids.plain])).rejects.toMatchObject({ code: '23505' });
    await insert(orgB, 'DB01');
  });
});
