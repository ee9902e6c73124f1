/** Fill `{{name}}` placeholders; unknown names are left as written so a missing variable is visible. */
export function fillTemplate(template: string, variables: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g, (whole, name: string) => (Object.hasOwn(variables, name) ? variables[name] : undefined) ?? whole);
}
