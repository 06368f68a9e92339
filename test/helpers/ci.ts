/** Is this a CI run? There, a test that would skip fails instead. Root-free. */
export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';
