/**
 * The daemon's log lines: one line per event, for people (a timestamp and a sentence) or, with
 * --log-format json, one JSON object per line for a log pipeline. Both carry the same fields, so
 * what a person reads is what a pipeline can query.
 */
export type LogFormat = "text" | "json";
export type Level = "info" | "warn" | "error";

export type Logger = (level: Level, event: string, message: string, fields?: Record<string, unknown>) => void;

export function makeLogger(format: LogFormat, write: (line: string) => void, now = () => new Date()): Logger {
  return (level, event, message, fields = {}) => {
    const time = now().toISOString();
    write(
      format === "json"
        ? `${JSON.stringify({ time, level, event, msg: message, ...fields })}\n`
        : `${time} ${level === "info" ? "" : `${level.toUpperCase()} `}${message}\n`,
    );
  };
}
