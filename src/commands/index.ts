/** Every command, in the order --help lists them. A new mode adds its line here. */
import { listenCommand } from './listen';
import { connectCommand } from './connect';
import { forwardCommand } from './forward';
import { execCommand } from './exec';
import { broadcastCommand } from './broadcast';
import { proxyCommand } from './proxy';
import { scanCommand } from './scan';
import { waitCommand } from './wait';
import { completionCommand } from './completion';
import { relayCommand } from './relay';
import { exposeCommand } from './expose';
import { allowLinkCommand } from './allow-link';
import { examplesCommand } from './examples';
import type { CommandFactory } from './types';

export const commands: CommandFactory[] = [listenCommand, connectCommand, forwardCommand, execCommand, broadcastCommand, proxyCommand, relayCommand, exposeCommand, scanCommand, waitCommand, allowLinkCommand, completionCommand, examplesCommand];
