import { Box, Text } from 'ink';
import type { ComponentPlan } from '../plan.js';
import {
  changesByComponent,
  choosable,
  PASS_ORDER,
  secondsLeft,
  type Candidate,
  type ConsoleState,
  type PassState,
  type VolumeWanted,
} from './model.js';

/** The console's screens: a projection of ConsoleState, nothing more. */

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function bar(fraction: number, width = 30): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

function Header({ state }: { state: ConsoleState }) {
  const { appliance } = state;
  const components = Object.entries(appliance.components);
  return (
    <Box flexDirection="column" marginBottom={1}>
      <Text bold>
        Ferry console — {appliance.product} on {appliance.platform}
      </Text>
      <Text>
        Installed: {appliance.release ?? '(nothing yet)'}
        {appliance.release && !appliance.verified ? ' (not a verified release)' : ''}
        {components.length > 0
          ? `   ${components.map(([name, version]) => `${name} ${version}`).join(' · ')}`
          : ''}
      </Text>
    </Box>
  );
}

const ACTION_COLOR: Record<string, string> = {
  install: 'green',
  upgrade: 'green',
  downgrade: 'yellow',
  reinstall: 'yellow',
  remove: 'yellow',
  keep: 'gray',
  skip: 'gray',
  error: 'red',
};

function PlanRows({ components }: { components: ComponentPlan[] }) {
  const width = Math.max(9, ...components.map((c) => c.name.length));
  return (
    <Box flexDirection="column">
      {components.map((c) => {
        const errors = c.reasons.filter((r) => r.code.startsWith('E_'));
        const why = (errors.length > 0 ? errors : c.reasons).map((r) => r.message).join('; ');
        return (
          <Text key={c.name} color={ACTION_COLOR[c.action] ?? 'white'}>
            {'  '}
            {c.name.padEnd(width)} {(c.action === 'error' ? 'BLOCKED' : c.action).padEnd(9)}{' '}
            {`${c.from ?? '-'} → ${c.to ?? '-'}`.padEnd(18)} {why}
          </Text>
        );
      })}
    </Box>
  );
}

/** A bundle for a newer Ferry: what Enter does about it, or why it can do nothing. */
function NeedsNewer({ candidate }: { candidate: Candidate }) {
  const { needs } = candidate;
  if (!needs) return null;
  return (
    <Box flexDirection="column">
      <Text bold color={needs.carried ? 'yellow' : 'red'}>
        Bundle found, but it needs Ferry {needs.version} or newer: {candidate.product}{' '}
        {candidate.release} ({candidate.kind}) — {candidate.file}
      </Text>
      {candidate.notes ? <Text> {candidate.notes}</Text> : null}
      {needs.carried ? (
        <Text>
          {'  '}It carries Ferry {needs.carried}. Enter checks that installer against the bundle's
          signature, copies it to the appliance and hands over to it: its console shows the plan,
          and Enter there applies.
        </Text>
      ) : (
        <Box flexDirection="column">
          <Text color="red">
            {'  '}✘ {candidate.problem?.code}: {candidate.problem?.message}
          </Text>
          <Text>
            {'  '}What to do: {needs.hint}
          </Text>
        </Box>
      )}
    </Box>
  );
}

function Chosen({ candidate, installed }: { candidate: Candidate; installed: string | null }) {
  const plan = candidate.plan;
  if (!plan) return <NeedsNewer candidate={candidate} />;
  const blocked = plan.verdict === 'blocked';
  const groups = changesByComponent(plan.changes);
  return (
    <Box flexDirection="column">
      <Text bold color={blocked ? 'red' : 'green'}>
        {blocked ? 'Bundle found, but it cannot be applied:' : 'Update ready:'} {candidate.product}{' '}
        {candidate.release} ({candidate.kind}) — {candidate.file}
      </Text>
      {candidate.notes ? <Text> {candidate.notes}</Text> : null}
      {plan.reasons.map((r) => (
        <Text key={r.code} color="red">
          {'  '}✘ {r.message}
        </Text>
      ))}
      <Box flexDirection="column" marginTop={1}>
        <Text bold>Changes since {installed ?? 'nothing'}:</Text>
        {groups.length === 0 ? <Text> none</Text> : null}
        {groups.map(([component, changes]) => (
          <Box key={component} flexDirection="column">
            <Text> {component}</Text>
            {changes.map((change) => (
              <Text key={change.id}>
                {'    '}
                {change.version} {change.kind.padEnd(6)} {change.id}: {change.summary}
              </Text>
            ))}
          </Box>
        ))}
      </Box>
      <Box flexDirection="column" marginTop={1}>
        <Text bold>What will happen:</Text>
        <PlanRows components={plan.components} />
        <Text> Stages {bytes(plan.stageBytes)} of payload.</Text>
      </Box>
    </Box>
  );
}

function Others({ state }: { state: ConsoleState }) {
  const others = state.candidates.filter((_, index) => index !== state.chosen);
  if (others.length === 0) return null;
  return (
    <Box flexDirection="column" marginTop={1}>
      <Text bold>Other bundles found:</Text>
      {others.map((c) => (
        <Text key={c.file} color="gray">
          {'  '}
          {c.file}:{' '}
          {c.problem
            ? `${c.problem.code}: ${c.problem.message}`
            : c.plan?.verdict === 'blocked'
              ? 'blocked'
              : c.plan && c.plan.order.length === 0
                ? 'nothing to do'
                : `${c.release}, not the newest`}
        </Text>
      ))}
    </Box>
  );
}

function ChooseScreen({ state }: { state: ConsoleState }) {
  const candidate = state.chosen === null ? undefined : state.candidates[state.chosen];
  const ready = candidate?.plan?.verdict === 'ok' && candidate.plan.order.length > 0;
  const carried = candidate?.needs?.carried;
  return (
    <Box flexDirection="column">
      {candidate ? (
        <Chosen candidate={candidate} installed={state.appliance.release} />
      ) : (
        <Text color="yellow">
          No bundle found on the attached media. Attach a USB stick or DVD with a bundle and start
          the console again.
        </Text>
      )}
      <Others state={state} />
      {state.notice ? (
        <Box marginTop={1}>
          <Text color="yellow">{state.notice}</Text>
        </Box>
      ) : null}
      <Box marginTop={1}>
        <Text inverse>
          {ready ? ' [Enter] apply ' : ''}
          {carried ? ` [Enter] hand over to Ferry ${carried} ` : ''}
          {state.candidates.filter(choosable).length > 1 ? ' [↑/↓] another bundle ' : ''} [q]
          quit{' '}
        </Text>
      </Box>
    </Box>
  );
}

function HandOverScreen({ state }: { state: ConsoleState }) {
  const candidate = state.chosen === null ? undefined : state.candidates[state.chosen];
  return (
    <Box flexDirection="column">
      <Text bold>
        Checking the installer {candidate?.file} carries (Ferry {candidate?.needs?.carried}) against
        the bundle's signature…
      </Text>
      <Text>
        {' '}
        Once it matches, this console closes and Ferry {candidate?.needs?.carried}'s opens.
      </Text>
      <Box marginTop={1}>
        <Text inverse> [q] stop here </Text>
      </Box>
    </Box>
  );
}

const PASS_MARK: Record<PassState, string> = { pending: ' ', running: '▶', done: '✔', failed: '✘' };

function ProgressScreen({ state }: { state: ConsoleState }) {
  const candidate = state.chosen === null ? undefined : state.candidates[state.chosen];
  const progress = state.progress;
  const left = secondsLeft(progress);
  return (
    <Box flexDirection="column">
      <Text bold>
        Installing {candidate?.product} {candidate?.release} (from{' '}
        {state.appliance.release ?? 'nothing'})
      </Text>
      <Box flexDirection="column" marginTop={1}>
        {PASS_ORDER.map((pass) => {
          const status = state.passes[pass] ?? 'pending';
          return (
            <Text
              key={pass}
              color={status === 'failed' ? 'red' : status === 'done' ? 'green' : undefined}
            >
              {'  '}
              {PASS_MARK[status]} {pass.padEnd(13)}
              {pass === 'stage' && progress && progress.total > 0
                ? `${bar(progress.bytes / progress.total)} ${bytes(progress.bytes)} of ${bytes(progress.total)}${left !== null && status === 'running' ? `, ~${left} s left` : ''}`
                : ''}
            </Text>
          );
        })}
        {state.passes.rollback === 'running' || state.passes.rollback === 'done' ? (
          <Text color="yellow"> ↺ rollback</Text>
        ) : null}
      </Box>
      {state.notice ? <Text color="yellow">{state.notice}</Text> : null}
      <Box flexDirection="column" marginTop={1}>
        {Object.entries(state.components).map(([name, c]) => (
          <Text key={name} color={c.state === 'failed' ? 'red' : undefined}>
            {'  '}
            {name.padEnd(14)} {c.pass}{' '}
            {c.state === 'running' ? '…' : c.state === 'done' ? '✔' : '✘'}
          </Text>
        ))}
      </Box>
      {state.volume ? <VolumePrompt wanted={state.volume} /> : null}
      <LogPane lines={state.log} />
    </Box>
  );
}

function VolumePrompt({ wanted }: { wanted: VolumeWanted }) {
  return (
    <Box
      flexDirection="column"
      marginTop={1}
      borderStyle="double"
      borderColor="yellow"
      paddingX={1}
    >
      {wanted.wrong ? <Text color="red">{wanted.wrong}</Text> : null}
      <Text bold>
        Insert volume {wanted.volume} of {wanted.volumes} ({wanted.label}) of {wanted.bundle}
      </Text>
      <Text>[Enter] it is in · [q] stop here (nothing has been changed yet)</Text>
    </Box>
  );
}

function LogPane({ lines }: { lines: string[] }) {
  const shown = lines.slice(-8);
  return (
    <Box flexDirection="column" marginTop={1} borderStyle="single" paddingX={1}>
      <Text bold>Log</Text>
      {shown.length === 0 ? (
        <Text color="gray">(nothing yet)</Text>
      ) : (
        shown.map((line, index) => <Text key={index}>{line}</Text>)
      )}
    </Box>
  );
}

function ResultScreen({ state }: { state: ConsoleState }) {
  const { result, error } = state;
  if (error) {
    return (
      <Box flexDirection="column">
        <Text bold color="red">
          ✘ NOT APPLIED: {error.code}
        </Text>
        <Text> {error.message}</Text>
        {error.hint ? <Text> What to do: {error.hint}</Text> : null}
        <Text>
          {' '}
          The appliance was not changed; it is at {state.appliance.release ?? '(nothing installed)'}
          .
        </Text>
        <LogPane lines={state.log} />
        <Text inverse> [q] quit </Text>
      </Box>
    );
  }
  if (!result) return null;
  const failure = result.failure;
  return (
    <Box flexDirection="column">
      {result.outcome === 'committed' ? (
        <Text bold color="green">
          ✔ COMMITTED: {result.plan.product} is now at {result.to}
          {result.plan.reachesTarget ? '' : ' (not a verified release)'}
        </Text>
      ) : result.outcome === 'rolled-back' ? (
        <Text bold color="red">
          ✘ ROLLED BACK: everything was undone; {result.plan.product} is still at{' '}
          {result.from ?? '(nothing)'}
        </Text>
      ) : (
        <Text bold color={failure ? 'red' : 'yellow'}>
          {failure ? '✘ NOT APPLIED: nothing was changed' : '= UNCHANGED: nothing to do'};{' '}
          {result.plan.product} is at {result.from ?? '(nothing)'}
        </Text>
      )}
      {failure ? (
        <Box flexDirection="column">
          <Text>
            {'  '}
            {failure.component ?? 'The bundle'} failed in the {failure.pass} pass
            {failure.artifact ? ` (${failure.artifact})` : ''}: {failure.status}
          </Text>
          {failure.tail
            .split('\n')
            .filter((line) => line !== '')
            .slice(-5)
            .map((line, index) => (
              <Text key={index} color="gray">
                {'  | '}
                {line}
              </Text>
            ))}
        </Box>
      ) : null}
      {state.notice ? <Text color="yellow"> {state.notice}</Text> : null}
      {result.log ? <Text> Log: {result.log}</Text> : null}
      <Box marginTop={1}>
        <Text inverse> [q] quit </Text>
      </Box>
    </Box>
  );
}

export function ConsoleView({ state }: { state: ConsoleState }) {
  return (
    <Box flexDirection="column">
      <Header state={state} />
      {state.screen === 'choose' ? (
        <ChooseScreen state={state} />
      ) : state.screen === 'handing-over' ? (
        <HandOverScreen state={state} />
      ) : state.screen === 'installing' ? (
        <ProgressScreen state={state} />
      ) : (
        <ResultScreen state={state} />
      )}
    </Box>
  );
}
