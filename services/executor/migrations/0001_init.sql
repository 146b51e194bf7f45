-- Schema executor, owned by the executor service. The service sets search_path to it on every
-- connection; its tables come with the service's own issue.
SELECT 1;
