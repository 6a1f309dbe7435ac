// The Cairn extension: starts `cairn lsp` for `.cairn` files. Everything the editor
// shows beyond colours (diagnostics, hover, completion, navigation, rename,
// formatting, code actions) comes from the language server.
'use strict';

const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client;

function createClient() {
  const config = vscode.workspace.getConfiguration('cairn');
  const command = config.get('server.path') || 'cairn';
  const serverOptions = {
    command,
    args: ['lsp'],
    transport: TransportKind.stdio,
  };
  const clientOptions = {
    documentSelector: [{ scheme: 'file', language: 'cairn' }, { scheme: 'untitled', language: 'cairn' }],
    synchronize: {
      // Template files and sources changed outside the editor reach the server.
      fileEvents: vscode.workspace.createFileSystemWatcher('**/*.{cairn,html,htm,txt,md,jinja,j2,mjml}'),
    },
  };
  return new LanguageClient('cairn', 'Cairn', serverOptions, clientOptions);
}

async function activate(context) {
  client = createClient();
  context.subscriptions.push(
    vscode.commands.registerCommand('cairn.restartServer', async () => {
      if (client) {
        await client.stop();
      }
      client = createClient();
      await client.start();
    }),
  );
  try {
    await client.start();
  } catch (error) {
    vscode.window.showErrorMessage(
      `Cairn: cannot start \`cairn lsp\` (${error.message}). Install cairn or set "cairn.server.path".`,
    );
  }
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
