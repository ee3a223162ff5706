/** Shared by the campaign schema tests: a minimal valid campaign, and the one-line error a bad one gets. */
import { expect } from 'vitest';
import { CampaignError, campaignFrom } from '../../src/fleet/campaign.js';

export const OK_CAMPAIGN = { name: 'c', matrix: { workloads: ['hotset-evict'], strategies: ['eager'], vcpus: [2] } };

export function campaignError(data: unknown): string {
  try {
    campaignFrom(data, 'c.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(CampaignError);
    return (e as Error).message;
  }
  throw new Error('accepted a bad campaign');
}
