import type { SqlClient } from '../../shared/store/sql';

export interface Seed {
  readonly projectId: string;
  readonly assistantId: string;
  readonly conversationId: string;
}

/** A project with one assistant (version 1) and one conversation, inserted with plain SQL. */
export async function seed(db: SqlClient, name = 'Acme'): Promise<Seed> {
  const projectId = crypto.randomUUID();
  const assistantId = crypto.randomUUID();
  const conversationId = crypto.randomUUID();
  await db.query('INSERT INTO projects (id, name) VALUES ($1::uuid, $2::text)', [projectId, name]);
  await db.query('INSERT INTO assistants (id, project_id, name) VALUES ($1::uuid, $2::uuid, $3::text)', [assistantId, projectId, 'Receptionist']);
  await db.query(`INSERT INTO assistant_versions (assistant_id, version, config) VALUES ($1::uuid, 1, '{}'::jsonb)`, [assistantId]);
  await db.query(
    `INSERT INTO conversations (id, project_id, assistant_id, assistant_version, channel, direction)
     VALUES ($1::uuid, $2::uuid, $3::uuid, 1, 'twilio', 'inbound')`,
    [conversationId, projectId, assistantId],
  );
  return { projectId, assistantId, conversationId };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
