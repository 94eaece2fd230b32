-- Notices to every process sharing this database (metadata's notices.rs): whoever
-- changes a row, a server, a replica or the CLI, the others hear of it at commit. Row
-- triggers, not statement triggers: a claim that took no job must not wake the other
-- replicas' workers (which would try, take none and wake these again).

-- 'sessions:NAME': the user's earlier tokens and sessions are no longer valid.
CREATE FUNCTION imagehub_notice_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('imagehub', 'sessions:' || OLD.name);
    RETURN NULL;
END
$$;
CREATE TRIGGER users_sessions_ended AFTER UPDATE OF sessions_valid_after ON users
    FOR EACH ROW WHEN (OLD.sessions_valid_after IS DISTINCT FROM NEW.sessions_valid_after)
    EXECUTE FUNCTION imagehub_notice_sessions();
CREATE TRIGGER users_removed AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION imagehub_notice_sessions();

-- 'import_jobs', 'build_jobs': a job was queued, changed or removed (PostgreSQL sends
-- one notice per transaction for repeats of the same text).
CREATE FUNCTION imagehub_notice_table() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('imagehub', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER import_jobs_changed AFTER INSERT OR UPDATE OR DELETE ON import_jobs
    FOR EACH ROW EXECUTE FUNCTION imagehub_notice_table();
CREATE TRIGGER build_jobs_changed AFTER INSERT OR UPDATE OR DELETE ON build_jobs
    FOR EACH ROW EXECUTE FUNCTION imagehub_notice_table();
