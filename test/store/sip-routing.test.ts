import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPgliteClient } from '../../media-node/db/pglite-client';
import { loadMigrations } from '../../media-node/db/migrations';
import { ConfigError } from '../../shared/contracts/errors';
import { ipAllowed } from '../../shared/tools/ip';
import { StoreError } from '../../shared/store/errors';
import { migrate } from '../../shared/store/migrate';
import {
  candidatesForUser,
  createSipRoutingStore,
  normalizeCidr,
  normalizeSipHost,
  normalizeSipNumber,
  parseSipDigestSecret,
  type SipRoutingStore,
} from '../../shared/store/sip-routing';
import type { SqlClient } from '../../shared/store/sql';
import { sqlBackends } from './backends';

async function rejection(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Error);
  return error as Error;
}

async function storeError(promise: Promise<unknown>, code: string): Promise<StoreError> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(StoreError);
  expect((error as StoreError).code).toBe(code);
  return error as StoreError;
}

const number = (text: string) => {
  const checked = normalizeSipNumber(text);
  return checked.ok ? checked.number : `invalid: ${checked.problem}`;
};

describe('SIP number normalisation', () => {
  it('strips separators from phone numbers, keeps "+" E.164 and bare digits apart, lowercases SIP users', () => {
    expect(number('+1 (415) 555-0123')).toBe('+14155550123');
    expect(number(' +44 20 7946.0958 ')).toBe('+442079460958');
    expect(number('1-415-555-0123')).toBe('14155550123');
    expect(number('100')).toBe('100');
    expect(number('Support')).toBe('support');
    expect(number('Sales.Team-2')).toBe('sales.team-2');
    expect(number("o'brien*1+x")).toBe("o'brien*1+x");
    expect(number('+12')).toBe('+12');
    expect(number('+123456789012345')).toBe('+123456789012345');
  });

  it('refuses what cannot be a Request-URI user, saying why and naming the input', () => {
    const problem = (text: string) => {
      const checked = normalizeSipNumber(text);
      expect(checked.ok, text).toBe(false);
      return checked.ok ? '' : checked.problem;
    };
    expect(problem('+1')).toMatch(/2 to 15 digits, not 1/);
    expect(problem('+1234567890123456')).toMatch(/"\+1234567890123456".*not 16/);
    expect(problem('+1415abc')).toMatch(/digits only/);
    expect(problem('+support')).toMatch(/digits only/);
    expect(problem('')).toMatch(/empty/);
    expect(problem('   ')).toMatch(/empty/);
    expect(problem('two words')).toMatch(/"two words" is neither a phone number/);
    expect(problem('a@b')).toMatch(/neither/);
    expect(problem('x'.repeat(65))).toMatch(/neither/);
    expect(problem('1'.repeat(33))).toMatch(/more than 32 digits/);
    expect(problem('9'.repeat(500))).toMatch(/longer than 128/);
  });

  it('candidates for a Request-URI user: exact first, then the other form; escapes decoded, parameters dropped', () => {
    expect(candidatesForUser('+14155550123')).toEqual(['+14155550123', '14155550123']);
    expect(candidatesForUser('14155550123')).toEqual(['14155550123', '+14155550123']);
    expect(candidatesForUser('%2B14155550123')).toEqual(['+14155550123', '14155550123']);
    expect(candidatesForUser('+1-415-555-0123;npdi;rn=+14155550000')).toEqual(['+14155550123', '14155550123']);
    expect(candidatesForUser('Support')).toEqual(['support']);
    expect(candidatesForUser('1'.repeat(20))).toEqual(['1'.repeat(20)]); // too long for E.164
    expect(candidatesForUser('%E0%A4%A')).toEqual([]);
    expect(candidatesForUser('not a user')).toEqual([]);
    expect(candidatesForUser('')).toEqual([]);
  });
});

describe('trunk addresses and hosts', () => {
  const cidr = (text: string) => {
    const checked = normalizeCidr(text);
    return checked.ok ? checked.cidr : `invalid: ${checked.problem}`;
  };

  it('canonical CIDRs: bare addresses become /32 and /128, IPv6 is compressed (RFC 5952)', () => {
    expect(cidr('198.51.100.7')).toBe('198.51.100.7/32');
    expect(cidr('203.0.113.0/24')).toBe('203.0.113.0/24');
    expect(cidr('0.0.0.0/0')).toBe('0.0.0.0/0');
    expect(cidr('2001:DB8:0:0::/32')).toBe('2001:db8::/32');
    expect(cidr('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1/128');
    expect(cidr('2001:0:0:1:0:0:0:1')).toBe('2001:0:0:1::1/128');
    expect(cidr('::1')).toBe('::1/128');
    expect(cidr('::/0')).toBe('::/0');
    expect(cidr('fe80:0:0:0:1:0:0:0')).toBe('fe80::1:0:0:0/128'); // equal runs: the first one
  });

  it('refuses host bits below the prefix (suggesting the network), garbage, zones and oversize prefixes', () => {
    expect(cidr('203.0.113.5/24')).toMatch(/did you mean "203.0.113.0\/24"/);
    expect(cidr('2001:db8::1/32')).toMatch(/did you mean "2001:db8::\/32"/);
    for (const bad of ['203.0.113.0/33', '::/129', '256.1.1.1', 'example.com', '10.0.0.0/8/8', 'fe80::1%eth0', '', '1.2.3.4/-1']) {
      expect(cidr(bad), bad).toMatch(/^invalid: /);
    }
  });

  it('canonical CIDRs are read back by the allow-list matcher the SIP server uses', () => {
    const ranges = ['203.0.113.0/24', '2001:db8::/32', '198.51.100.7'].map(cidr);
    expect(ipAllowed('203.0.113.200', ranges)).toBe(true);
    expect(ipAllowed('198.51.100.7', ranges)).toBe(true);
    expect(ipAllowed('198.51.100.8', ranges)).toBe(false);
    expect(ipAllowed('2001:db8:ffff::5', ranges)).toBe(true);
    expect(ipAllowed('2001:db9::5', ranges)).toBe(false);
  });

  it('hosts: DNS names lowercased, IP literals canonical, garbage refused', () => {
    expect(normalizeSipHost('SIP.Carrier.Example.')).toBe('sip.carrier.example');
    expect(normalizeSipHost('203.0.113.9')).toBe('203.0.113.9');
    expect(normalizeSipHost('[2001:DB8::0:1]')).toBe('2001:db8::1');
    expect(normalizeSipHost('2001:db8::1')).toBe('2001:db8::1');
    for (const bad of ['', 'under_score.example', '-lead.example', 'a..b', '1.2.3.999', '[sip.example]', 'host:5060', `${'a'.repeat(64)}.example`]) {
      expect(normalizeSipHost(bad), bad).toBeUndefined();
    }
  });

  it('a sip credential secret is {username, password}, both non-empty strings', () => {
    expect(parseSipDigestSecret('{"username":"pbx","password":"s3cret"}')).toEqual({ username: 'pbx', password: 's3cret' });
    for (const bad of [undefined, '', 'null', '"x"', '{"username":"pbx"}', '{"username":"","password":"x"}', '{"username":"u","password":7}']) {
      expect(parseSipDigestSecret(bad), String(bad)).toBeUndefined();
    }
  });
});

describe.each(sqlBackends())('SIP routing store on $name', (backend) => {
  let db: SqlClient;
  let store: SipRoutingStore;
  let acme: string;
  let globex: string;
  let receptionist: string;
  let sales: string;
  let globexBot: string;

  async function project(name: string): Promise<string> {
    const id = crypto.randomUUID();
    await db.query('INSERT INTO projects (id, name) VALUES ($1::uuid, $2::text)', [id, name]);
    return id;
  }
  async function assistant(projectId: string, name: string): Promise<string> {
    const id = crypto.randomUUID();
    await db.query('INSERT INTO assistants (id, project_id, name) VALUES ($1::uuid, $2::uuid, $3::text)', [id, projectId, name]);
    return id;
  }

  beforeAll(async () => {
    db = await backend.open();
    store = createSipRoutingStore(db);
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    // Numbers are unique across the whole database: every test starts with none assigned.
    await db.query('DELETE FROM sip_numbers');
    acme = await project('Acme');
    globex = await project('Globex');
    receptionist = await assistant(acme, 'Receptionist');
    sales = await assistant(acme, 'Sales');
    globexBot = await assistant(globex, 'Bot');
  });

  describe('trunks', () => {
    it('create, read, list by name, replace in place (same id), delete', async () => {
      const created = await store.putTrunk(acme, 'pbx', {
        inbound: { cidrs: ['203.0.113.0/24', '198.51.100.7', '203.0.113.0/24'], digestCredential: 'pbx-auth', challenge: 407, realm: 'voice' },
        outbound: { host: 'SIP.Carrier.Example', credential: 'carrier-auth', fromUser: '+14155550100' },
      });
      expect(created).toMatchObject({
        projectId: acme,
        name: 'pbx',
        created: true,
        inbound: { cidrs: ['203.0.113.0/24', '198.51.100.7/32'], digestCredential: 'pbx-auth', challenge: 407, realm: 'voice' },
        outbound: { host: 'sip.carrier.example', port: 5060, credential: 'carrier-auth', fromUser: '+14155550100' },
      });
      expect(created.createdAt).toBeInstanceOf(Date);
      const { created: _created, ...trunk } = created;
      expect(await store.getTrunk(acme, 'pbx')).toEqual(trunk);

      await store.putTrunk(acme, 'carrier', { inbound: { cidrs: ['2001:db8::/32'] } });
      expect((await store.listTrunks(acme)).map((t) => t.name)).toEqual(['carrier', 'pbx']);

      const replaced = await store.putTrunk(acme, 'pbx', { inbound: { cidrs: ['192.0.2.1'] } });
      expect(replaced).toMatchObject({ id: created.id, created: false, inbound: { cidrs: ['192.0.2.1/32'], challenge: 401 } });
      expect(replaced.inbound.digestCredential).toBeUndefined();
      expect(replaced.inbound.realm).toBeUndefined();
      expect(replaced.outbound).toBeUndefined();
      expect(replaced.updatedAt.getTime()).toBeGreaterThanOrEqual(created.updatedAt.getTime());

      expect(await store.deleteTrunk(acme, 'pbx')).toBe(true);
      expect(await store.getTrunk(acme, 'pbx')).toBeUndefined();
      expect(await store.deleteTrunk(acme, 'pbx')).toBe(false);
      expect((await store.listTrunks(acme)).map((t) => t.name)).toEqual(['carrier']);
    });

    it('names are per project: another project sees none of them and may reuse the name', async () => {
      await store.putTrunk(acme, 'pbx', { inbound: { cidrs: ['203.0.113.0/24'] } });
      expect(await store.getTrunk(globex, 'pbx')).toBeUndefined();
      expect(await store.listTrunks(globex)).toEqual([]);
      expect(await store.deleteTrunk(globex, 'pbx')).toBe(false);
      const theirs = await store.putTrunk(globex, 'pbx', { inbound: { digestCredential: 'their-auth' } });
      expect(theirs.created).toBe(true);
      expect((await store.getTrunk(acme, 'pbx'))?.inbound.cidrs).toEqual(['203.0.113.0/24']);
      expect(await store.getTrunk('not-a-uuid', 'pbx')).toBeUndefined();
    });

    it('invalid input is one ConfigError listing every problem; an unknown project is PROJECT_UNKNOWN', async () => {
      const error = await rejection(
        store.putTrunk(acme, 'bad name', {
          inbound: { cidrs: ['10.0.0.1/8', 'nonsense'], challenge: 402 as 401, realm: 'say "hi"' },
          outbound: { host: 'bad host', port: 70000, fromUser: 'a b' },
        }),
      );
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).code).toBe('SIP_TRUNK_INVALID');
      const issues = (error as ConfigError).issues.join('\n');
      for (const part of ['name:', 'did you mean "10.0.0.0/8"', '"nonsense"', 'inbound.challenge', 'inbound.realm', 'outbound.host', 'outbound.port', 'outbound.fromUser']) {
        expect(issues).toContain(part);
      }
      expect((await rejection(store.putTrunk(acme, 'empty', { inbound: {} }))).message).toMatch(/admit nobody/);
      await storeError(store.putTrunk(crypto.randomUUID(), 'pbx', { inbound: { cidrs: ['192.0.2.0/24'] } }), 'PROJECT_UNKNOWN');
      expect(await store.listTrunks(acme)).toEqual([]);
    });
  });

  describe('numbers', () => {
    it('setNumbers normalises, names trunks, replaces the whole set and keeps untouched numbers', async () => {
      await store.putTrunk(acme, 'pbx', { inbound: { cidrs: ['203.0.113.0/24'] } });
      const first = await store.setNumbers(acme, receptionist, [{ number: '+1 (415) 555-0123' }, { number: 'Support', trunk: 'pbx' }, { number: '100' }]);
      expect(first).toEqual([
        { number: '+14155550123', projectId: acme, assistantId: receptionist },
        { number: '100', projectId: acme, assistantId: receptionist },
        { number: 'support', projectId: acme, assistantId: receptionist, trunkId: expect.any(String), trunkName: 'pbx' },
      ]);
      const [createdBefore] = await db.query<{ created_at: unknown }>(`SELECT created_at::text AS created_at FROM sip_numbers WHERE number = '+14155550123'`);

      const second = await store.setNumbers(acme, receptionist, [{ number: '+14155550123', trunk: 'pbx' }, { number: 'help' }]);
      expect(second.map((n) => [n.number, n.trunkName])).toEqual([
        ['+14155550123', 'pbx'],
        ['help', undefined],
      ]);
      const [createdAfter] = await db.query<{ created_at: unknown }>(`SELECT created_at::text AS created_at FROM sip_numbers WHERE number = '+14155550123'`);
      expect(createdAfter).toEqual(createdBefore);
      expect(await store.listNumbers(acme, receptionist)).toEqual(second);
      expect(await store.listNumbers(globex, receptionist)).toEqual([]);

      // A form change of one number (with "+" → without) is a replacement too.
      expect((await store.setNumbers(acme, receptionist, [{ number: '14155550123' }])).map((n) => n.number)).toEqual(['14155550123']);
      expect(await store.setNumbers(acme, receptionist, [])).toEqual([]);
      expect(await store.listNumbers(acme, receptionist)).toEqual([]);
    });

    it('a number is unique across the deployment, in either form: NUMBER_TAKEN names it and changes nothing', async () => {
      await store.setNumbers(acme, receptionist, [{ number: '+14155550123' }, { number: 'support' }]);
      await store.setNumbers(globex, globexBot, [{ number: '+442079460958' }]);

      const acrossProjects = await storeError(store.setNumbers(globex, globexBot, [{ number: '+44 20 7946 0958' }, { number: '+14155550123' }]), 'NUMBER_TAKEN');
      expect(acrossProjects.message).toContain('+14155550123');
      expect(acrossProjects.message).toContain('another project');
      expect(acrossProjects.message).not.toContain(receptionist);

      const otherForm = await storeError(store.setNumbers(globex, globexBot, [{ number: '14155550123' }]), 'NUMBER_TAKEN');
      expect(otherForm.message).toContain('14155550123 (held as +14155550123)');

      const sameProject = await storeError(store.setNumbers(acme, sales, [{ number: 'SUPPORT' }]), 'NUMBER_TAKEN');
      expect(sameProject.message).toContain(`assistant ${receptionist} of this project`);

      // Nothing moved: the refused calls left every assignment as it was.
      expect((await store.listNumbers(globex, globexBot)).map((n) => n.number)).toEqual(['+442079460958']);
      expect((await store.listNumbers(acme, receptionist)).map((n) => n.number)).toEqual(['+14155550123', 'support']);
      expect(await store.listNumbers(acme, sales)).toEqual([]);
    });

    it('concurrent claims of one number (in both forms) leave exactly one holder', async () => {
      const rivals = await Promise.all([assistant(globex, 'A'), assistant(globex, 'B'), assistant(acme, 'C')]);
      const forms = ['+14155550199', '14155550199', '+1 415 555 0199'];
      const outcomes = await Promise.allSettled(rivals.map((id, i) => store.setNumbers(i < 2 ? globex : acme, id, [{ number: forms[i]! }])));
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') expect((outcome.reason as StoreError).code).toBe('NUMBER_TAKEN');
      }
      const rows = await db.query(`SELECT number FROM sip_numbers WHERE ltrim(number, '+') = '14155550199'`);
      expect(rows).toHaveLength(1);
    });

    it('a rival claiming the number between the check and the insert is NUMBER_TAKEN too, in either form', async () => {
      /** The store on a client that lets a rival insert `rivalNumber` just before the store's own insert. */
      const racedStore = (rivalNumber: string) => {
        const rival = async (tx: SqlClient) => {
          const insert = 'INSERT INTO sip_numbers (number, project_id, assistant_id) VALUES ($1::text, $2::uuid, $3::uuid)';
          // PostgreSQL: another connection, committed at once. PGlite has one session: the rival joins the transaction.
          await (backend.name === 'postgres' ? db : tx).query(insert, [rivalNumber, globex, globexBot]);
        };
        let fired = false;
        const wrap = (tx: SqlClient): SqlClient => ({
          ...tx,
          async query<Row extends object = Record<string, unknown>>(text: string, params?: readonly unknown[]) {
            if (!fired && text.trimStart().startsWith('INSERT INTO sip_numbers')) {
              fired = true;
              await rival(tx);
            }
            return tx.query<Row>(text, params);
          },
          transaction: (fn) => tx.transaction((inner) => fn(wrap(inner))),
        });
        return createSipRoutingStore({ ...db, transaction: (fn) => db.transaction((tx) => fn(wrap(tx))) });
      };

      // The same form: the insert skips the rival's row and the count gives it away.
      const sameForm = await storeError(racedStore('+14155550123').setNumbers(acme, receptionist, [{ number: '+14155550123' }]), 'NUMBER_TAKEN');
      expect(sameForm.message).toContain('number +14155550123 is assigned to an assistant of another project');
      expect(await store.listNumbers(acme, receptionist)).toEqual([]);
      await db.query('DELETE FROM sip_numbers');

      // The other form: the one-form index refuses the insert.
      await storeError(racedStore('14155550123').setNumbers(acme, receptionist, [{ number: '+14155550123' }]), 'NUMBER_TAKEN');
      expect(await store.listNumbers(acme, receptionist)).toEqual([]);
    });

    it('refuses invalid and repeated numbers, unknown trunks (also another project\'s) and foreign or deleted assistants', async () => {
      const invalid = await rejection(store.setNumbers(acme, receptionist, [{ number: 'two words' }, { number: '+1' }]));
      expect(invalid).toBeInstanceOf(ConfigError);
      expect((invalid as ConfigError).issues).toHaveLength(2);
      const repeated = await rejection(store.setNumbers(acme, receptionist, [{ number: '+14155550123' }, { number: '14155550123' }]));
      expect((repeated as ConfigError).issues.join()).toContain('listed twice');

      await store.putTrunk(globex, 'theirs', { inbound: { cidrs: ['192.0.2.0/24'] } });
      const unknownTrunk = await storeError(store.setNumbers(acme, receptionist, [{ number: '+14155550123', trunk: 'theirs' }]), 'TRUNK_NOT_FOUND');
      expect(unknownTrunk.message).toContain('"theirs"');

      await storeError(store.setNumbers(acme, globexBot, [{ number: '+14155550123' }]), 'ASSISTANT_UNKNOWN');
      await storeError(store.setNumbers(acme, 'nope', [{ number: '+14155550123' }]), 'ASSISTANT_UNKNOWN');
      await db.query('UPDATE assistants SET deleted_at = now() WHERE id = $1::uuid', [sales]);
      await storeError(store.setNumbers(acme, sales, [{ number: '+14155550123' }]), 'ASSISTANT_UNKNOWN');
      expect(await db.query('SELECT 1 FROM sip_numbers WHERE project_id = $1::uuid', [acme])).toEqual([]);
    });

    it('the database itself refuses both forms of a number and a malformed key', async () => {
      await store.setNumbers(acme, receptionist, [{ number: '+14155550123' }]);
      await expect(
        db.query(`INSERT INTO sip_numbers (number, project_id, assistant_id) VALUES ('14155550123', $1::uuid, $2::uuid)`, [globex, globexBot]),
      ).rejects.toThrow();
      await expect(db.query(`INSERT INTO sip_numbers (number, project_id, assistant_id) VALUES ('Support', $1::uuid, $2::uuid)`, [globex, globexBot])).rejects.toThrow();
      // A number can only name a trunk of its own project.
      const theirs = await store.putTrunk(globex, 'theirs', { inbound: { cidrs: ['192.0.2.0/24'] } });
      await expect(
        db.query(`INSERT INTO sip_numbers (number, project_id, assistant_id, trunk_id) VALUES ('sales', $1::uuid, $2::uuid, $3::uuid)`, [acme, sales, theirs.id]),
      ).rejects.toThrow();
    });
  });

  describe('inbound routing', () => {
    it('resolveInbound takes the first assigned candidate; trunks are the number\'s own or else all of its project', async () => {
      await store.putTrunk(acme, 'pbx', { inbound: { cidrs: ['203.0.113.0/24'] } });
      await store.putTrunk(acme, 'carrier', { inbound: { digestCredential: 'carrier-auth' } });
      await store.putTrunk(globex, 'elsewhere', { inbound: { cidrs: ['192.0.2.0/24'] } });
      await store.setNumbers(acme, receptionist, [{ number: '+14155550123' }, { number: 'support', trunk: 'pbx' }]);
      await store.setNumbers(acme, sales, [{ number: '14155550999' }]);

      const byPlus = await store.resolveInbound(candidatesForUser('14155550123'));
      expect(byPlus?.number).toEqual({ number: '+14155550123', projectId: acme, assistantId: receptionist });
      expect(byPlus?.trunks.map((t) => t.name)).toEqual(['carrier', 'pbx']);

      const withoutPlus = await store.resolveInbound(candidatesForUser('+14155550999'));
      expect(withoutPlus?.number.assistantId).toBe(sales);

      const pinned = await store.resolveInbound(candidatesForUser('Support'));
      expect(pinned?.number).toMatchObject({ number: 'support', trunkName: 'pbx' });
      expect(pinned?.trunks.map((t) => t.name)).toEqual(['pbx']);
      expect(pinned?.trunks[0]?.inbound.cidrs).toEqual(['203.0.113.0/24']);

      // Candidate order decides when several are assigned.
      expect((await store.resolveInbound(['14155550999', '+14155550123']))?.number.assistantId).toBe(sales);
      expect((await store.resolveInbound(['+14155550123', '14155550999']))?.number.assistantId).toBe(receptionist);

      expect(await store.resolveInbound(candidatesForUser('+19999999999'))).toBeUndefined();
      expect(await store.resolveInbound([])).toBeUndefined();
    });

    it('a number of a project without trunks resolves with no trunks (the SIP server refuses it)', async () => {
      await store.setNumbers(globex, globexBot, [{ number: '+442079460958' }]);
      expect(await store.resolveInbound(['+442079460958'])).toEqual({ number: { number: '+442079460958', projectId: globex, assistantId: globexBot }, trunks: [] });
    });

    it('numbers of a soft-deleted assistant stop routing and are free for another assistant', async () => {
      await store.setNumbers(acme, sales, [{ number: '+14155550123' }]);
      await db.query('UPDATE assistants SET deleted_at = now() WHERE id = $1::uuid', [sales]);
      expect(await store.resolveInbound(['+14155550123'])).toBeUndefined();
      const taken = await store.setNumbers(globex, globexBot, [{ number: '14155550123' }]);
      expect(taken.map((n) => n.number)).toEqual(['14155550123']);
      expect((await store.resolveInbound(candidatesForUser('+14155550123')))?.number.assistantId).toBe(globexBot);
    });
  });

  describe('deletes', () => {
    it('a trunk that numbers name is TRUNK_IN_USE (naming them) until they are reassigned', async () => {
      await store.putTrunk(acme, 'pbx', { inbound: { cidrs: ['203.0.113.0/24'] } });
      await store.setNumbers(acme, receptionist, [{ number: 'support', trunk: 'pbx' }, { number: '+14155550123', trunk: 'pbx' }]);
      const inUse = await storeError(store.deleteTrunk(acme, 'pbx'), 'TRUNK_IN_USE');
      expect(inUse.message).toContain('2 numbers: +14155550123, support');
      expect(await store.getTrunk(acme, 'pbx')).toBeDefined();

      await store.setNumbers(acme, receptionist, [{ number: 'support' }, { number: '+14155550123' }]);
      expect(await store.deleteTrunk(acme, 'pbx')).toBe(true);
      expect((await store.listNumbers(acme, receptionist)).map((n) => n.number)).toEqual(['+14155550123', 'support']);
    });

    it('deleting an assistant removes its numbers; deleting a project removes its trunks and numbers', async () => {
      await store.putTrunk(acme, 'pbx', { inbound: { cidrs: ['203.0.113.0/24'] } });
      await store.setNumbers(acme, receptionist, [{ number: '+14155550123', trunk: 'pbx' }]);
      await store.setNumbers(acme, sales, [{ number: 'sales', trunk: 'pbx' }]);
      await db.query('DELETE FROM assistants WHERE id = $1::uuid', [receptionist]);
      expect(await store.resolveInbound(['+14155550123'])).toBeUndefined();
      expect(await db.query('SELECT number FROM sip_numbers WHERE assistant_id = $1::uuid', [receptionist])).toEqual([]);

      await db.query('DELETE FROM conversations WHERE project_id = $1::uuid', [acme]);
      await db.query('DELETE FROM projects WHERE id = $1::uuid', [acme]);
      expect(await db.query('SELECT 1 FROM sip_numbers WHERE project_id = $1::uuid', [acme])).toEqual([]);
      expect(await db.query('SELECT 1 FROM sip_trunks WHERE project_id = $1::uuid', [acme])).toEqual([]);
    });
  });
});

describe('SIP routing on PGlite persisted in a data directory', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sip-routing-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('trunks and numbers survive closing and reopening the database', async () => {
    const projectId = crypto.randomUUID();
    const assistantId = crypto.randomUUID();
    const first = await createPgliteClient({ dataDir: dir });
    await migrate(first, await loadMigrations());
    await first.query('INSERT INTO projects (id, name) VALUES ($1::uuid, $2::text)', [projectId, 'Acme']);
    await first.query('INSERT INTO assistants (id, project_id, name) VALUES ($1::uuid, $2::uuid, $3::text)', [assistantId, projectId, 'Receptionist']);
    const writer = createSipRoutingStore(first);
    await writer.putTrunk(projectId, 'pbx', { inbound: { cidrs: ['2001:db8::/32'], digestCredential: 'pbx-auth', challenge: 407 } });
    await writer.setNumbers(projectId, assistantId, [{ number: '+14155550123', trunk: 'pbx' }]);
    await first.close();

    const second = await createPgliteClient({ dataDir: dir });
    expect((await migrate(second, await loadMigrations())).applied).toEqual([]);
    const route = await createSipRoutingStore(second).resolveInbound(candidatesForUser('14155550123'));
    await second.close();
    expect(route?.number).toMatchObject({ number: '+14155550123', assistantId, trunkName: 'pbx' });
    expect(route?.trunks.map((t) => t.inbound)).toEqual([{ cidrs: ['2001:db8::/32'], digestCredential: 'pbx-auth', challenge: 407 }]);
  }, 60_000);
});
