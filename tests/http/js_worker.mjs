// A worker written with camunda-external-task-client-js, as a user would write one.
// node js_worker.mjs BASE_URL USER PASSWORD (run from a folder where the package is installed,
// or with NODE_PATH pointing at its node_modules). Same behaviour as py_worker.py.
import { Client, Variables, BasicAuthInterceptor, logger } from "camunda-external-task-client-js";

const [baseUrl, username, password] = process.argv.slice(2);
const client = new Client({
  baseUrl,
  workerId: "js-worker",
  maxTasks: 10,
  lockDuration: 10000,
  asyncResponseTimeout: 5000,
  interceptors: new BasicAuthInterceptor({ username, password }),
  use: logger.level("error"),
});

const failed = new Set(); // tasks this worker failed once

client.subscribe("charge", { includeExtensionProperties: true }, async ({ task, taskService }) => {
  const amount = task.variables.get("amount");
  if (amount > 1000) {
    const vars = new Variables().set("declined", true);
    await taskService.handleBpmnError(task, "CARD_DECLINED", "over the limit", vars);
    return;
  }
  if (task.variables.get("flaky") && !failed.has(task.id)) {
    failed.add(task.id);
    await taskService.handleFailure(task, {
      errorMessage: "gateway timeout",
      errorDetails: "try again",
      retries: 2,
      retryTimeout: 100,
    });
    return;
  }
  const vars = new Variables()
    .set("charged", amount)
    .set("by", "js")
    .set("gateway", task.extensionProperties ? task.extensionProperties.gateway : null)
    .set("receipt", { amount, lines: [1, 2] });
  await taskService.complete(task, vars);
});

client.subscribe("copy", async ({ task, taskService }) => {
  const source = task.variables.get("file");
  const vars = new Variables().set("copy", { from: source, to: source.replace("in/", "archive/") });
  await taskService.complete(task, vars);
});

console.log("ready");
