// curl and Python snippets that reproduce a job through the public API. The key is read
// from $VIHUB_API_KEY in both: a copied snippet never carries the user's secret.

export function pyLiteral(value, indent = 0) {
  const pad = '    '.repeat(indent + 1);
  const end = '    '.repeat(indent);
  if (value === null || value === undefined) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : `float("${value > 0 ? 'inf' : value < 0 ? '-inf' : 'nan'}")`;
  if (typeof value === 'string') return JSON.stringify(value); // a JSON string is a valid Python string
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== 'object' || v === null)) return `[${value.map((v) => pyLiteral(v)).join(', ')}]`;
    return `[\n${value.map((v) => pad + pyLiteral(v, indent + 1)).join(',\n')},\n${end}]`;
  }
  const entries = Object.entries(value);
  if (!entries.length) return '{}';
  return `{\n${entries.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${pyLiteral(v, indent + 1)}`).join(',\n')},\n${end}}`;
}

export function curlSnippet(body, origin) {
  return [
    `curl -sS -X POST ${origin}/v1/jobs \\`,
    '  -H "Authorization: Bearer $VIHUB_API_KEY" \\',
    '  -H "Content-Type: application/json" \\',
    "  --data-binary @- <<'JSON'",
    JSON.stringify(body, null, 2),
    'JSON',
  ].join('\n');
}

export function pythonSnippet(body, origin) {
  return `import os
import time

import httpx

body = ${pyLiteral(body)}

headers = {"Authorization": f"Bearer {os.environ['VIHUB_API_KEY']}"} if os.environ.get("VIHUB_API_KEY") else {}
with httpx.Client(base_url=${JSON.stringify(origin)}, headers=headers, timeout=60) as client:
    job = client.post("/v1/jobs", json=body).raise_for_status().json()
    while job["state"] in ("queued", "running"):
        time.sleep(1)
        job = client.get(f"/v1/jobs/{job['id']}").raise_for_status().json()
    print(job["state"], job["progress"])
    if job["state"] == "succeeded":
        summary = client.get(f"/v1/jobs/{job['id']}/summary").raise_for_status().json()["summary"]
        params = client.get(f"/v1/jobs/{job['id']}/params").raise_for_status().json()
        print(summary)
`;
}
