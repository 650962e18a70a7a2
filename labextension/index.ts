import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-hybrid-cloud:plugin',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    console.log('jupyter-hybrid-cloud activated');
  }
};

export default plugin;
